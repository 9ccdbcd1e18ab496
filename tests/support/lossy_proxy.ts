/**
 * A seeded fault-injecting UDP proxy for TFTP, on 127.0.0.1: loss,
 * duplication, reordering and delay, in both directions.
 *
 * TFTP changes ports mid-conversation (the server answers from a new transfer
 * ID), so the proxy mirrors that: each client gets its own upstream socket,
 * and each server port it hears from gets its own client-facing socket, so
 * the client too sees a new port per transfer.
 *
 *   client --> listen ------------ upstream(client) --> server:69
 *   client <-- downstream(client, T) <-- upstream(client) <-- server:T
 */
import { loadRuntime } from "../../adapters/runtime.ts";
import type { DatagramTransport } from "../../core/transport.ts";
import { rng } from "./random_packets.ts";

export interface Faults {
  /** Probability that a datagram is dropped. */
  loss: number;
  /** Probability that a datagram is sent twice. */
  duplicate: number;
  /** Probability that a datagram is held back (so later ones overtake it). */
  reorder: number;
  /** Longest hold-back, in milliseconds. */
  maxDelayMs: number;
  seed: number;
  /** Datagrams that pass untouched (e.g. the negotiation, for a client that cannot cope with its loss). */
  spare?: (datagram: Uint8Array) => boolean;
}

export interface ProxyStats {
  forwarded: number;
  dropped: number;
  duplicated: number;
  delayed: number;
}

interface Client {
  address: string;
  port: number;
  upstream: DatagramTransport;
  downstream: Map<number, Promise<DatagramTransport>>;
  /** Last time it carried a datagram: idle clients' sockets are closed (long runs open thousands). */
  seen: number;
}

const IDLE_MS = 30_000;

export async function startProxy(serverPort: number, faults: Faults) {
  const runtime = await loadRuntime();
  const random = rng(faults.seed);
  const stats: ProxyStats = { forwarded: 0, dropped: 0, duplicated: 0, delayed: 0 };
  const clients = new Map<string, Promise<Client>>();
  const sockets: DatagramTransport[] = [];
  const timers = new Set<{ stop(): void }>();
  /** Transfer ports the server has answered from (for fuzzers aiming at live transfers). */
  const serverPorts = new Set<number>();
  let closed = false;

  function forward(via: DatagramTransport, data: Uint8Array, port: number, address: string) {
    if (closed) return;
    const copy = data.slice(); // Deno's send reads the bytes later
    if (faults.spare?.(copy)) {
      stats.forwarded++;
      via.send(copy, port, address, () => {});
      return;
    }
    if (random() < faults.loss) {
      stats.dropped++;
      return;
    }
    const copies = random() < faults.duplicate ? 2 : 1;
    if (copies === 2) stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      stats.forwarded++;
      if (random() < faults.reorder) {
        stats.delayed++;
        const t = runtime.after(1 + random() * faults.maxDelayMs, () => {
          timers.delete(t);
          if (!closed) via.send(copy, port, address, () => {});
        });
        timers.add(t);
      } else via.send(copy, port, address, () => {});
    }
  }

  async function bind(onMessage: (d: Uint8Array, a: string, p: number) => void) {
    const t = await runtime.bind("127.0.0.1", 0, onMessage);
    sockets.push(t);
    return t;
  }

  async function sweep(now: number) {
    for (const [key, pending] of clients) {
      const c = await pending;
      if (now - c.seen < IDLE_MS) continue;
      clients.delete(key);
      c.upstream.close();
      for (const d of c.downstream.values()) (await d).close();
    }
  }
  let lastSweep = runtime.now();

  function clientFor(address: string, port: number): Promise<Client> {
    const key = `${address}|${port}`;
    let c = clients.get(key);
    if (!c) {
      const now = runtime.now();
      if (now - lastSweep > IDLE_MS) {
        lastSweep = now;
        void sweep(now);
      }
      c = (async () => {
        const client: Client = { address, port, upstream: null!, downstream: new Map(), seen: runtime.now() };
        client.upstream = await bind((data, fromAddress, fromPort) => {
          if (fromAddress !== "127.0.0.1") return; // only the server talks to an upstream socket
          client.seen = runtime.now();
          // From the server: answer the client from a socket standing for that server port.
          if (fromPort === serverPort) return forward(listen, data, port, address);
          serverPorts.add(fromPort);
          let d = client.downstream.get(fromPort);
          if (!d) {
            d = bind((back, a, p) => {
              if (a === address && p === port) forward(client.upstream, back, fromPort, "127.0.0.1"); // only its client
            });
            client.downstream.set(fromPort, d);
          }
          const copy = data.slice(); // the adapter may reuse `data` once this handler returns
          d.then((down) => forward(down, copy, port, address));
        });
        return client;
      })();
      clients.set(key, c);
    }
    return c;
  }

  const listen = await bind((data, address, port) => {
    const copy = data.slice(); // the adapter may reuse `data` once this handler returns
    clientFor(address, port).then((c) => {
      c.seen = runtime.now();
      forward(c.upstream, copy, serverPort, "127.0.0.1");
    });
  });

  return {
    port: listen.port,
    stats,
    serverPorts,
    close() {
      closed = true;
      for (const t of timers) t.stop();
      for (const s of sockets) s.close();
    },
  };
}
