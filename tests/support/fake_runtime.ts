/**
 * A Runtime with a fake clock and an in-memory network, for engine tests:
 * datagrams wait in a queue until the test delivers them, and time moves only
 * when the test advances it. Nothing sleeps.
 */
import { Emmer, type EmmerOptions } from "../../drivers/app.ts";
import { memory, wasm } from "../../core/codec.ts";
import type { DatagramTransport, MessageHandler, Runtime } from "../../core/transport.ts";

interface Datagram {
  data: Uint8Array;
  from: { address: string; port: number };
  to: { address: string; port: number };
  /** Set while the sender's bytes have not been read yet (lazy sends). */
  done?: () => void;
  read?: () => Uint8Array;
}

export class FakeNet implements Runtime {
  time = 0;
  /**
   * Lazy sends, like Deno's: the bytes are read, and the send reported done,
   * only when the datagram is delivered. Default: copied at once, done in a microtask.
   */
  lazySends = false;
  queue: Datagram[] = [];
  #sockets = new Map<string, MessageHandler>();
  #nextPort = 40000;
  #timers = new Set<{ at: number; fn: () => void }>();

  now = () => this.time;

  bind(hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
    const p = port || this.#nextPort++;
    const key = `${hostname}:${p}`;
    if (this.#sockets.has(key)) return Promise.reject(new Error(`${key} in use`));
    this.#sockets.set(key, onMessage);
    const queue = this.queue;
    const sockets = this.#sockets;
    // deno-lint-ignore no-this-alias -- the transport's methods below have a `this` of their own
    const net = this;
    return Promise.resolve({
      address: hostname,
      port: p,
      send(data, toPort, toAddress, done) {
        const from = { address: hostname, port: p };
        const to = { address: toAddress, port: toPort };
        if (net.lazySends) {
          // Like a kernel reading the bytes later: at the same address, even if the memory grew since.
          const { byteOffset, length } = data;
          const inWasm = data.buffer === wasm.memory.buffer;
          queue.push({ data, from, to, done, read: () => (inWasm ? memory().slice(byteOffset, byteOffset + length) : data.slice()) });
        } else {
          queue.push({ data: data.slice(), from, to });
          queueMicrotask(done); // like the real adapters: the send completes later
        }
      },
      close() {
        sockets.delete(key);
      },
    });
  }

  after(ms: number, fn: () => void) {
    const t = { at: this.time + ms, fn };
    this.#timers.add(t);
    return { stop: () => void this.#timers.delete(t) };
  }

  /** Lets promises and send completions run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 50; j++) await Promise.resolve();
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  }

  /**
   * Delivers the queued datagrams that pass `filter` (and what they cause,
   * until quiet); the others stay queued.
   */
  async deliver(filter: (d: Datagram) => boolean = () => true): Promise<void> {
    await this.settle();
    for (;;) {
      const batch = this.queue.filter(filter);
      if (batch.length === 0) break;
      this.queue.splice(0, this.queue.length, ...this.queue.filter((d) => !filter(d)));
      for (const d of batch) {
        let data = d.data;
        if (d.done) {
          data = d.read!(); // a lazy send: the bytes are read only now
          d.done();
        }
        this.#sockets.get(`${d.to.address}:${d.to.port}`)?.(data, d.from.address, d.from.port);
      }
      await this.settle();
    }
  }

  /** Moves the clock, firing the timers that come due, in time order. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    while (true) {
      const due = [...this.#timers].map((t) => t.at).filter((x) => x <= end);
      if (due.length === 0) break;
      this.time = Math.min(...due);
      for (const t of [...this.#timers]) if (t.at <= this.time) (this.#timers.delete(t), t.fn());
      await this.settle();
    }
    this.time = end;
  }
}

/** A client socket on the fake network that keeps what it receives. */
export async function fakePeer(net: FakeNet, address = "127.0.0.2") {
  const inbox: { data: Uint8Array; port: number }[] = [];
  const t = await net.bind(address, 0, (data, _a, port) => inbox.push({ data: data.slice(), port }));
  return {
    port: t.port,
    inbox,
    send: (bytes: Uint8Array, port: number, to = "127.0.0.1") => t.send(bytes, port, to, () => {}),
    take: () => inbox.splice(0),
  };
}

/** An Emmer on a fresh FakeNet, listening on 127.0.0.1:69; `options` override the test defaults. */
export async function fakeServer(configure: (app: Emmer) => void, options: EmmerOptions = {}) {
  const net = new FakeNet();
  const app = new Emmer({ runtime: net, hostname: "127.0.0.1", port: 69, timeout: 1, retries: 2, drainTimeout: 3000, onError: () => {}, ...options });
  configure(app);
  await app.listen();
  return { net, app };
}
