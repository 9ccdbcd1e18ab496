/**
 * Node's transfer sockets with windows sent as one UDP GSO send each (Linux, with
 * an FFI: adapters/native). A transfer's window leaves its ring as consecutive
 * datagrams laid out [header][block][header][block]...: one sendmsg with a
 * UDP_SEGMENT size hands the kernel the lot, where node:dgram makes a send call,
 * a request object and a callback per datagram. The socket is made through libc
 * and handed to node:dgram (bind({ fd })), which reads it as any other. What a
 * GSO send does not take (a full send buffer, a segment count the kernel
 * refuses, a run that is not contiguous) goes out per datagram: nothing is lost,
 * and the peer sees the same datagrams in the same order.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { mapIPv4, unmapIPv4 } from "./ipv4_mapped.ts";
import type { BatchDatagrams } from "./native/datagrams.ts";
import type { Detection } from "./native/detect.ts";
import { adoptSocket } from "./native/handoff.ts";
import { sendWindow } from "./native/window.ts";

/** GSO sends and the datagrams they carried (the metrics show them). */
export const windowStats = { gsoSends: 0, gsoDatagrams: 0 };

/**
 * `base` with transfer sockets that send windows by GSO, when this machine allows it;
 * else `base` as it is. The listening socket stays base's (socket activation, cluster).
 */
export async function withWindows(base: Runtime): Promise<Runtime> {
  let native: BatchDatagrams | null = null;
  let detection: Detection | null = null;
  try {
    ({ native, detection } = await (await import("./native/detect.ts")).loadNative());
  } catch (error) {
    return { ...base, datagramPath: { path: "per-datagram", detail: `no batch path: ${(error as Error)?.message ?? error}` } };
  }
  if (native === null || detection === null || !detection.gso.ok || !detection.adopt.ok) {
    const why = detection?.reason ?? (detection && !detection.gso.ok ? detection.gso.why : detection?.adopt.why) ?? "unknown";
    return { ...base, datagramPath: { path: "per-datagram", detail: why } };
  }
  const batch = native;
  return {
    ...base,
    datagramPath: { path: "gso", detail: `UDP GSO through ${detection.ffi}` },
    // A transfer's socket is the one bound with a datagram size (see Runtime.bind).
    bind: (hostname, port, onMessage, maxDatagram) =>
      maxDatagram === undefined ? base.bind(hostname, port, onMessage) : bindWindows(batch, hostname, port, onMessage),
  };
}

async function bindWindows(native: BatchDatagrams, hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
  const made = native.openUdp(hostname, port); // throws as a bind does (EADDRINUSE ...)
  let socket;
  try {
    socket = await adoptSocket(made);
  } catch (error) {
    native.close(made.fd);
    throw error;
  }
  const ipv6 = made.family === 6;
  socket.on("error", () => {}); // as adapters/node.ts: ICMP reports are not fatal
  socket.on("message", (msg, rinfo) => onMessage(msg, unmapIPv4(rinfo.address), rinfo.port));
  let closed = false;
  // Datagrams handed to node:dgram and not yet out. A send through libc goes out at once, and
  // would overtake them: while any wait, every send takes node:dgram's queue (order matters:
  // a receiver ACKs a block that arrives early as a gap).
  let queued = 0;
  const viaDgram = (data: Uint8Array, port: number, address: string, done: () => void) => {
    if (closed) return done();
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
  };
  /** Consecutive datagrams of one size (the last may be shorter) as GSO sends; the rest by node:dgram. */
  const sendRun = (window: Uint8Array, size: number, port: number, address: string, done: () => void) => {
    if (queued > 0 || closed) {
      for (let at = 0; at < window.length; at += size) viaDgram(window.subarray(at, Math.min(window.length, at + size)), port, address, done);
      return;
    }
    const r = sendWindow(native, made.fd, window, size, address, port, (d) => viaDgram(d, port, address, done));
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
      let i = 0;
      while (i < datagrams.length) {
        // A run: datagrams of one size, each right after the other in memory (a window's
        // ring slots); the last may be shorter (the file's last block). A ring's wrap ends it.
        const first = datagrams[i];
        const size = first.length;
        let end = first.byteOffset + size;
        let j = i + 1;
        while (j < datagrams.length) {
          const d = datagrams[j];
          if (d.buffer !== first.buffer || d.byteOffset !== end || d.length > size) break;
          end += d.length;
          j++;
          if (d.length < size) break;
        }
        sendRun(new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset), size, port, address, done);
        i = j;
      }
    },
    close() {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}
