/**
 * UDP sockets that no runtime socket object owns (Linux, with an FFI that can wait
 * for readability: koffi's libuv poll handle on Node). Where node:dgram makes a
 * callback, a Buffer and an address object per datagram received and a send call
 * with a request object per datagram sent, these make a few system calls per wake-up:
 * - what is queued when the socket wakes is drained by recvmmsg, a batch per call;
 * - whatever is sent while those datagrams are handled (the answers to a batch of
 *   ACKs: in single-port mode, to as many clients) leaves in one sendmmsg at the end;
 * - a window (datagrams of one size, one after the other in its ring) is one UDP GSO
 *   send.
 * A send the kernel cannot take yet (EAGAIN) waits, in order, for writability; one it
 * refuses (a destination it will not send to) is dropped as a lost datagram is: TFTP
 * retransmits. The peer sees the datagrams and their order that node:dgram would give it.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { type BatchDatagrams, EAGAIN, ReceiveBatch, type UdpSocket } from "./native/datagrams.ts";
import type { Detection } from "./native/detect.ts";
import type { Watch } from "./native/libc.ts";
import { literalFamily } from "./native/sockaddr.ts";
import { eachRun } from "./native/window.ts";
import { windowStats } from "./gso_windows.ts";

/** What the batch calls carried (the metrics show them): datagrams per call is the batching. */
export const batchStats = { recvmmsgCalls: 0, recvmmsgDatagrams: 0, sendmmsgCalls: 0, sendmmsgDatagrams: 0 };

/** Datagrams one recvmmsg takes; a wake-up takes at most ROUNDS batches, then lets other sockets have theirs. */
const BATCH = 64;
const ROUNDS = 4;

/** One datagram (segment 0), or a run of `segment`-byte datagrams that goes as one GSO send. */
interface Pending {
  data: Uint8Array;
  segment: number;
  address: string;
  port: number;
  done: () => void;
}

/**
 * `base` with every socket made here, where this machine has the calls and an FFI that
 * waits for readability; else what `otherwise` makes of `base` (node_windows.ts: GSO
 * sends on node:dgram's sockets, or node:dgram alone). The listening socket stays the
 * runtime's where node:cluster shares it with workers (`shareListening`) or it is passed
 * by descriptor (bindFd: socket activation).
 */
export async function withNativeSockets(base: Runtime, shareListening: boolean, otherwise: (base: Runtime) => Promise<Runtime>): Promise<Runtime> {
  let loaded: { native: BatchDatagrams | null; detection: Detection };
  try {
    loaded = await (await import("./native/detect.ts")).loadNative();
  } catch {
    return otherwise(base);
  }
  const { native, detection: d } = loaded;
  if (native === null || !(d.watch.ok && d.recvmmsg.ok && d.sendmmsg.ok && d.gso.ok)) return otherwise(base);
  return {
    ...base,
    datagramPath: { path: "gso", detail: `UDP GSO, recvmmsg and sendmmsg through ${d.ffi}` },
    bind: nativeSockets(base, native, shareListening),
  };
}

/**
 * `bind` for sockets of this module. The listening socket too, unless it must be the
 * runtime's (`shareListening`: node:cluster shares the primary's socket with its workers).
 */
export function nativeSockets(base: Runtime, native: BatchDatagrams, shareListening: boolean): Runtime["bind"] {
  // One receive batch for all sockets: a wake-up's datagrams are handled before the next wake-up.
  let batch: ReceiveBatch | null = null;
  return (hostname, port, onMessage, maxDatagram) => {
    // An interface name as an IPv6 zone ("fe80::1%eth0") needs a lookup this module does not make.
    const own = literalFamily(hostname) !== null && !/%.*\D/.test(hostname);
    if ((shareListening && maxDatagram === undefined) || !own) return base.bind(hostname, port, onMessage, maxDatagram);
    batch ??= new ReceiveBatch(BATCH, 65536); // pages are touched only as large datagrams arrive
    try {
      return Promise.resolve(new NativeUdp(native, native.openUdp(hostname, port), onMessage, batch));
    } catch (error) {
      return Promise.reject(error); // as a refused bind: EADDRINUSE, EACCES ...
    }
  };
}

class NativeUdp implements DatagramTransport {
  readonly address: string;
  readonly port: number;
  readonly #native: BatchDatagrams;
  readonly #fd: number;
  readonly #onMessage: MessageHandler;
  readonly #batch: ReceiveBatch;
  readonly #watch: Watch;
  /** Sends not yet taken by the kernel, in order, from #head. */
  #queue: Pending[] = [];
  #head = 0;
  /** A wake-up's datagrams are being handled: sends wait for its end, to leave together. */
  #handling = false;
  /** The kernel's send buffer was full: sends wait for writability. */
  #blocked = false;
  /** In #flush: a send from a done() callback only queues (the loop takes it). */
  #flushing = false;
  #closed = false;

  constructor(native: BatchDatagrams, socket: UdpSocket, onMessage: MessageHandler, batch: ReceiveBatch) {
    this.address = socket.address;
    this.port = socket.port;
    this.#native = native;
    this.#fd = socket.fd;
    this.#onMessage = onMessage;
    this.#batch = batch;
    try {
      this.#watch = native.libc.watch!(socket.fd, (readable, writable) => this.#ready(readable, writable));
    } catch (error) {
      native.close(socket.fd);
      throw error;
    }
  }

  send(data: Uint8Array, port: number, address: string, done: () => void): void {
    if (this.#closed) return done();
    this.#queue.push({ data, segment: 0, address, port, done });
    if (!this.#handling && !this.#blocked && !this.#flushing) this.#flush();
  }

  sendMany(datagrams: Uint8Array[], port: number, address: string, done: () => void): void {
    if (this.#closed) return datagrams.forEach(() => done());
    eachRun(datagrams, (data, segment, count) => this.#queue.push({ data, segment: count > 1 ? segment : 0, address, port, done }));
    if (!this.#handling && !this.#blocked && !this.#flushing) this.#flush();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch.stop();
    this.#native.close(this.#fd);
    // What the kernel never took is lost, as node:dgram's queued sends are at close.
    const left = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const p of left) for (let k = 0; k < count(p); k++) p.done();
  }

  #ready(readable: boolean, writable: boolean): void {
    if (this.#closed) return;
    if (writable && this.#blocked) {
      this.#blocked = false;
      this.#watch.writable(false);
      this.#flush();
    }
    if (readable) this.#receive();
  }

  #receive(): void {
    const batch = this.#batch;
    this.#handling = true;
    try {
      for (let round = 0; round < ROUNDS && !this.#closed; round++) {
        const { received } = this.#native.recvmmsg(this.#fd, batch);
        if (received > 0) (batchStats.recvmmsgCalls++, (batchStats.recvmmsgDatagrams += received));
        for (let i = 0; i < received && !this.#closed; i++) {
          const peer = batch.peer(i);
          this.#onMessage(batch.datagram(i), peer.address, peer.port);
        }
        if (received < batch.capacity) break;
      }
    } catch (error) {
      // As from a node:dgram 'message' listener: an uncaught exception, after the sends go.
      queueMicrotask(() => {
        throw error;
      });
    } finally {
      this.#handling = false;
    }
    if (!this.#blocked) this.#flush();
  }

  /** Hands the kernel what is queued: runs of single datagrams by sendmmsg, windows by GSO. */
  #flush(): void {
    this.#flushing = true;
    try {
      while (this.#head < this.#queue.length && !this.#closed) {
        const p = this.#queue[this.#head];
        const r = p.segment > 0 ? this.#sendWindow(p) : this.#sendSingles();
        if (r === EAGAIN) {
          this.#blocked = true;
          this.#watch.writable(true);
          return;
        }
      }
      this.#queue.length = 0;
      this.#head = 0;
    } finally {
      this.#flushing = false;
    }
  }

  /** The singles from #head on, in sendmmsg calls; 0, or the errno that stopped them. */
  #sendSingles(): number {
    const q = this.#queue;
    let end = this.#head + 1;
    while (end < q.length && q[end].segment === 0) end++;
    const r = this.#native.sendmmsg(this.#fd, q, this.#head, end);
    if (r.sent > 0) (batchStats.sendmmsgCalls++, (batchStats.sendmmsgDatagrams += r.sent));
    for (let k = 0; k < r.sent; k++) q[this.#head++].done();
    if (r.errno === 0 || r.errno === EAGAIN) return r.errno;
    q[this.#head++].done(); // refused: lost, as on the wire
    return 0;
  }

  /** A window at #head as GSO sends; 0, or EAGAIN with what went out cut off its front. */
  #sendWindow(p: Pending): number {
    const r = this.#native.sendSegmented(this.#fd, p.data, p.segment, p.address, p.port);
    if (r.sent > 0) {
      windowStats.gsoSends++;
      windowStats.gsoDatagrams += r.sent;
    }
    for (let k = 0; k < r.sent; k++) p.done();
    let rest = p.data.subarray(Math.min(p.data.length, r.sent * p.segment));
    if (r.errno === EAGAIN && rest.length > 0) {
      p.data = rest;
      return EAGAIN;
    }
    if (r.errno !== 0 && rest.length > 0) {
      p.done(); // its first datagram was refused: lost, as on the wire; the rest go on
      rest = rest.subarray(Math.min(rest.length, p.segment));
    }
    p.data = rest;
    if (rest.length === 0) this.#head++;
    return 0;
  }
}

/** Datagrams a pending entry holds. */
function count(p: Pending): number {
  return p.segment > 0 ? Math.ceil(p.data.length / p.segment) : 1;
}
