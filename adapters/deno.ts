/**
 * Deno's own UDP sockets (Deno.listenDatagram, "unstable": ["net"]) behind
 * core/transport.ts. adapters/runtime.ts falls back to node:dgram when Deno
 * runs without the net unstable API.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { standardTimers } from "./timers.ts";
import { unmapIPv4 } from "./ipv4_mapped.ts";

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
 * `maxDatagram`: a read transfer's socket needs 128 bytes, not 64 KiB, and a
 * server may hold thousands of them for clients that stopped answering
 * (BENCHMARKS.md, section 5).
 */
export function bind(hostname: string, port: number, onMessage: MessageHandler, maxDatagram = RECEIVE_BUFFER): Promise<DatagramTransport> {
  let conn: DenoDatagramConn;
  try {
    conn = Deno.listenDatagram({ hostname, port, transport: "udp" });
  } catch (error) {
    return Promise.reject(error);
  }
  let closed = false;
  // One buffer, reused: the core copies what it keeps before the handler returns. A chain
  // of promise callbacks rather than an async loop: a suspended async function holds a
  // generator and its registers, and a stalled transfer's socket waits here for seconds.
  const buffer = new Uint8Array(maxDatagram);
  const next = (): void => {
    if (!closed) conn.receive(buffer).then(received, failed);
  };
  const received = ([data, from]: [Uint8Array, DenoAddr]): void => {
    // The next receive may fill `buffer` at once: start it only after the handler ran.
    try {
      onMessage(data, unmapIPv4(from.hostname), from.port);
    } finally {
      next();
    }
  };
  // e.g. an ICMP error reported on the socket: not fatal; wait a little so a lasting error cannot spin
  const failed = (): void => {
    if (!closed) setTimeout(next, 1);
  };
  next();
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
