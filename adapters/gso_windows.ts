/**
 * Transfer sockets with windows sent as one UDP GSO send each (Linux, with an
 * FFI: adapters/native), on Node and on Bun. A transfer's window leaves its ring
 * as consecutive datagrams laid out [header][block][header][block]...: one
 * sendmsg with a UDP_SEGMENT size hands the kernel the lot, where the runtime's
 * socket makes a send call (and on Node a request object and a callback) per
 * datagram. The socket is made through libc and handed to a runtime socket
 * (a Carrier), which reads it as any other. What a GSO send does not take (a
 * full send buffer, a segment count the kernel refuses, a run that is not
 * contiguous) goes out through the carrier: nothing is lost, and the peer sees
 * the same datagrams in the same order.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { mapIPv4, unmapIPv4 } from "./ipv4_mapped.ts";
import type { BatchDatagrams, UdpSocket } from "./native/datagrams.ts";
import type { Detection } from "./native/detect.ts";
import { adoptSocket } from "./native/handoff.ts";
import { eachRun, sendWindow } from "./native/window.ts";

/** GSO sends and the datagrams they carried (the metrics show them). */
export const windowStats = { gsoSends: 0, gsoDatagrams: 0 };

/** A runtime socket that has taken a descriptor made through libc: it reads it and sends one datagram at a time. */
export interface Carrier {
  /** One datagram, after every one handed over before it; `done` once its bytes are free. */
  send(data: Uint8Array, port: number, address: string, done: () => void): void;
  /** Datagrams handed to send() and not in the kernel yet: a send through libc now would overtake them. */
  waiting(): number;
  /**
   * send() hands the datagram to the kernel before it returns (or holds it, counted by waiting()),
   * for less than a send through the FFI: a lone datagram (lock-step) then goes through it.
   * Bun.udpSocket's is (about 0.2 µs of user time a datagram less than sendmsg through bun:ffi);
   * node:dgram's is not (it sends on a later loop turn, and costs more than koffi's call).
   */
  readonly direct?: boolean;
  /** Closes the socket and its descriptor. */
  close(): void;
}

/** Makes a Carrier of `socket` (owning its descriptor from then on); rejects if the runtime refuses it. */
export type Adopt = (socket: UdpSocket, onMessage: MessageHandler) => Promise<Carrier>;

/**
 * `base` with transfer sockets that send windows by GSO, when this machine allows it;
 * else `base` as it is. The listening socket stays base's (socket activation, cluster).
 * `adopt`: how the runtime takes a descriptor; node:dgram's bind({ fd }) by default.
 */
export async function withWindows(base: Runtime, adopt: Adopt = dgramCarrier): Promise<Runtime> {
  let native: BatchDatagrams | null = null;
  let detection: Detection | null = null;
  try {
    ({ native, detection } = await (await import("./native/detect.ts")).loadNative());
  } catch (error) {
    return { ...base, datagramPath: { path: "per-datagram", detail: `no batch path: ${(error as Error)?.message ?? error}` } };
  }
  if (native === null || detection === null || !detection.gso.ok) {
    const why = detection?.reason ?? (detection ? detection.gso.why : "unknown");
    return { ...base, datagramPath: { path: "per-datagram", detail: why } };
  }
  const refused = await tryAdopt(native, adopt);
  if (refused !== null) return { ...base, datagramPath: { path: "per-datagram", detail: `the runtime's socket refused a descriptor: ${refused}` } };
  const batch = native;
  return {
    ...base,
    datagramPath: { path: "gso", detail: `UDP GSO through ${detection.ffi}` },
    // A transfer's socket is the one bound with a datagram size (see Runtime.bind).
    bind: (hostname, port, onMessage, maxDatagram) =>
      maxDatagram === undefined ? base.bind(hostname, port, onMessage) : bindWindows(batch, adopt, hostname, port, onMessage),
  };
}

/** null when `adopt` takes a loopback socket, else why not. */
async function tryAdopt(native: BatchDatagrams, adopt: Adopt): Promise<string | null> {
  let s: UdpSocket;
  try {
    s = native.openUdp("127.0.0.1", 0);
  } catch (error) {
    return `no 127.0.0.1 socket to try it on: ${(error as Error)?.message ?? error}`;
  }
  try {
    (await adopt(s, () => {})).close();
    return null;
  } catch (error) {
    native.close(s.fd);
    return (error as Error)?.message ?? String(error);
  }
}

/** node:dgram's socket on the descriptor (Node; Bun's node:dgram takes one too). */
export async function dgramCarrier(made: UdpSocket, onMessage: MessageHandler): Promise<Carrier> {
  const socket = await adoptSocket(made);
  const ipv6 = made.family === 6;
  socket.on("error", () => {}); // as adapters/node.ts: ICMP reports are not fatal
  socket.on("message", (msg, rinfo) => onMessage(msg, unmapIPv4(rinfo.address), rinfo.port));
  // node:dgram sends later, on its own loop turn: until the callback, a datagram is not out.
  let queued = 0;
  return {
    send(data, port, address, done) {
      queued++;
      const sent = () => {
        queued--;
        done();
      };
      try {
        socket.send(data, port, mapIPv4(address, ipv6), sent);
      } catch {
        sent();
      }
    },
    waiting: () => queued,
    close: () => socket.close(),
  };
}

async function bindWindows(native: BatchDatagrams, adopt: Adopt, hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
  const made = native.openUdp(hostname, port); // throws as a bind does (EADDRINUSE ...)
  let carrier: Carrier;
  try {
    carrier = await adopt(made, onMessage);
  } catch (error) {
    native.close(made.fd);
    throw error;
  }
  return windowTransport(native, made, carrier);
}

/** The transport over `made`: runs of a window through libc by GSO, everything else through `carrier`, in order. */
export function windowTransport(native: Pick<BatchDatagrams, "sendSegmented">, made: UdpSocket, carrier: Carrier): DatagramTransport {
  let closed = false;
  const viaCarrier = (data: Uint8Array, port: number, address: string, done: () => void) => {
    if (closed) return done();
    carrier.send(data, port, address, done);
  };
  /** Consecutive datagrams of one size (the last may be shorter) as GSO sends; the rest by the carrier. */
  const sendRun = (window: Uint8Array, size: number, port: number, address: string, done: () => void) => {
    // While the carrier holds datagrams, every send takes its queue: a send through libc goes out
    // at once and would overtake them (a receiver ACKs a block that arrives early as a gap).
    // A lone datagram takes a direct carrier: GSO gains nothing on one.
    if (closed || carrier.waiting() > 0 || (carrier.direct && window.length <= size)) {
      for (let at = 0; at < window.length; at += size) viaCarrier(window.subarray(at, Math.min(window.length, at + size)), port, address, done);
      return;
    }
    const r = sendWindow(native, made.fd, window, size, address, port, (d) => viaCarrier(d, port, address, done));
    if (r.gso > 0) {
      windowStats.gsoSends++;
      windowStats.gsoDatagrams += r.gso;
    }
    // The kernel has copied what went out through libc: those bytes are free at once.
    for (let k = 0; k < r.gso; k++) done();
  };
  return {
    address: made.address,
    port: made.port,
    send(data, port, address, done) {
      sendRun(data, data.length, port, address, done);
    },
    sendMany(datagrams, port, address, done) {
      eachRun(datagrams, (run, size) => sendRun(run, size, port, address, done));
    },
    close() {
      if (closed) return;
      closed = true;
      carrier.close();
    },
  };
}
