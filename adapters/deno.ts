/**
 * Deno's own UDP sockets (Deno.listenDatagram, "unstable": ["net"]) behind
 * core/transport.ts. adapters/runtime.ts falls back to node:dgram when Deno
 * runs without the net unstable API.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { standardTimers } from "./timers.ts";

interface DenoAddr {
  hostname: string;
  port: number;
}
interface DenoDatagramConn {
  readonly addr: DenoAddr;
  receive(buffer?: Uint8Array): Promise<[Uint8Array, DenoAddr]>;
  send(data: Uint8Array, addr: DenoAddr & { transport: "udp" }): Promise<number>;
  close(): void;
}
declare const Deno: {
  listenDatagram(options: { hostname: string; port: number; transport: "udp" }): DenoDatagramConn;
};

/** Largest datagram TFTP can carry (blksize 65464 plus its header), with room to spare. */
const RECEIVE_BUFFER = 65536;

/**
 * Each socket keeps its own receive buffer (a pending receive() writes into it
 * whenever a datagram arrives, so sockets cannot share one). Sized by
 * `maxDatagram`: a read transfer's socket needs 1 KiB, not 64 (10,000 stalled
 * transfers held 630 MiB of receive buffers before).
 */
export function bind(hostname: string, port: number, onMessage: MessageHandler, maxDatagram = RECEIVE_BUFFER): Promise<DatagramTransport> {
  let conn: DenoDatagramConn;
  try {
    conn = Deno.listenDatagram({ hostname, port, transport: "udp" });
  } catch (error) {
    return Promise.reject(error);
  }
  let closed = false;
  (async () => {
    // One buffer, reused: the core copies what it keeps before the handler returns.
    const buffer = new Uint8Array(maxDatagram);
    while (!closed) {
      let received: [Uint8Array, DenoAddr];
      try {
        received = await conn.receive(buffer);
      } catch {
        if (closed) return;
        // e.g. an ICMP error reported on the socket: not fatal; yield so a lasting error cannot spin
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      const [data, from] = received;
      onMessage(data, from.hostname, from.port);
    }
  })();
  return Promise.resolve({
    address: conn.addr.hostname,
    port: conn.addr.port,
    send(data, toPort, address, done) {
      if (closed) return done();
      // Deno's send is asynchronous and does not copy: `done` runs once the bytes are out.
      conn.send(data, { transport: "udp", hostname: address, port: toPort }).then(done, done);
    },
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
  });
}

export const runtime: Runtime = { bind, ...standardTimers };
