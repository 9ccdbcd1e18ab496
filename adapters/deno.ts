/**
 * Deno's own UDP sockets (Deno.listenDatagram, "unstable": ["net"]) behind
 * core/transport.ts. adapters/runtime.ts falls back to node:dgram when Deno
 * runs without the net unstable API. With the ffi permission on Linux, a
 * transfer's windows go out as UDP GSO sends on the very socket Deno reads
 * (withWindows): Deno does not hand out its descriptor, the kernel says which
 * it is (native/deno_fd.ts).
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { standardTimers } from "./timers.ts";
import { unmapIPv4 } from "./ipv4_mapped.ts";
import type { Carrier } from "./gso_windows.ts";
import type { BatchDatagrams } from "./native/datagrams.ts";
import type { DenoLibc } from "./native/deno_ffi.ts";
import { literalFamily } from "./native/sockaddr.ts";

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
  try {
    return Promise.resolve(open(Deno.listenDatagram({ hostname, port, transport: "udp" }), onMessage, maxDatagram));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The transport over `conn`, reading it from now on. */
function open(conn: DenoDatagramConn, onMessage: MessageHandler, maxDatagram: number): DatagramTransport & { waiting(): number } {
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
  // Sends handed to Deno and not finished: a send through libc now would overtake them.
  let pending = 0;
  const sent = (done: () => void) => () => {
    pending--;
    done();
  };
  return {
    address: conn.addr.hostname,
    port: conn.addr.port,
    waiting: () => pending,
    send(data, toPort, address, done) {
      if (closed) return done();
      pending++;
      // Deno's send is asynchronous and does not copy: `done` runs once the bytes are out.
      const finished = sent(done);
      conn.send(data, { transport: "udp", hostname: address, port: toPort }).then(finished, finished);
    },
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
}

export const runtime: Runtime = { bind, ...standardTimers };

/**
 * `runtime` with transfer sockets whose windows go out as GSO sends (gso_windows.ts's
 * windowTransport), where the FFI, the kernel and the descriptor lookup allow; else
 * `runtime` as it is, saying why. Everything else (receiving, lone datagrams while a
 * send of Deno's is still pending, the listening socket) stays Deno's. Why not sockets
 * of our own read through one epoll_wait on Deno's blocking pool (as native_udp.ts reads
 * them on Node): bench/native_cpu.mjs measured both (16 MiB, pinned, task-clock per
 * block). Windows cost the same on either (2.6-2.8 µs at windowsize 16, 1.2-1.7 at
 * 64, against 6.5 and 5.4 per datagram), but the epoll path's thread hop per wake-up
 * made lock-step dearer (20.5 µs against 14); this path leaves it as it was (13.5).
 */
export async function withWindows(): Promise<Runtime> {
  const per = (detail: string): Runtime => ({ ...runtime, datagramPath: { path: "per-datagram", detail } });
  let loaded;
  try {
    loaded = await (await import("./native/detect.ts")).loadNative();
  } catch (error) {
    return per(`no batch path: ${(error as Error)?.message ?? error}`);
  }
  const { native, detection: d } = loaded;
  if (native === null || !d.gso.ok) return per(d.reason ?? d.gso.why);
  const libc = native.libc as DenoLibc;
  const batch: BatchDatagrams = native;
  const { windowTransport } = await import("./gso_windows.ts");
  /** A transfer's socket; `found`: its descriptor was found, and windows go out by GSO. */
  const bindWindows = (hostname: string, port: number, onMessage: MessageHandler, maxDatagram: number) => {
    const expected = libc.descriptors.lowestFree();
    const conn = Deno.listenDatagram({ hostname, port, transport: "udp" });
    const family = literalFamily(conn.addr.hostname);
    const fd = family === null ? -1 : libc.descriptors.find(family, conn.addr.hostname, conn.addr.port, expected);
    const t = open(conn, onMessage, maxDatagram);
    if (fd < 0) return { transport: t as DatagramTransport, found: false }; // one datagram at a time, as without the FFI
    batch.remember(fd, family!);
    const carrier: Carrier = { send: t.send, waiting: t.waiting, close: t.close };
    return { transport: windowTransport(batch, { fd, family: family!, address: t.address, port: t.port }, carrier), found: true };
  };
  // Tried once on a loopback socket: a lookup that fails there would fail for every transfer.
  try {
    const probe = bindWindows("127.0.0.1", 0, () => {}, 16);
    probe.transport.close();
    if (!probe.found) return per("the descriptor of Deno.listenDatagram's socket was not found");
  } catch (error) {
    return per(`no loopback socket to try the descriptor lookup on: ${(error as Error)?.message ?? error}`);
  }
  return {
    ...runtime,
    datagramPath: { path: "gso", detail: `UDP GSO through ${d.ffi} on Deno.listenDatagram's sockets` },
    // A transfer's socket is the one bound with a datagram size (see Runtime.bind).
    bind: (hostname, port, onMessage, maxDatagram) => {
      if (maxDatagram === undefined) return bind(hostname, port, onMessage);
      try {
        return Promise.resolve(bindWindows(hostname, port, onMessage, maxDatagram).transport);
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}
