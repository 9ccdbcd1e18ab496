/**
 * Bun's own UDP sockets (Bun.udpSocket) behind core/transport.ts.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { standardTimers } from "./timers.ts";
import { mapIPv4, unmapIPv4 } from "./ipv4_mapped.ts";
import type { Carrier } from "./gso_windows.ts";
import type { UdpSocket } from "./native/datagrams.ts";
// Socket activation through Bun's node:dgram, whose bind({ fd }) is documented; Bun.udpSocket's
// `fd` (what that uses inside) is not, so only the GSO path relies on it, after trying it (adopt()).
import { bindFd } from "./node.ts";

interface BunUdpSocket {
  readonly port: number;
  readonly address: { address: string; port: number };
  /** false: the kernel's buffer is full; `drain` is called when there is room again. */
  send(data: Uint8Array, port: number, address: string): boolean;
  /** [data, port, address, data, port, address, ...]; returns how many went out. */
  sendMany(packets: (Uint8Array | number | string)[]): number;
  close(): void;
}
declare const Bun: {
  udpSocket(options: {
    hostname?: string;
    port?: number;
    /** A socket bound already (how Bun's own node:dgram takes bind({ fd })); not in Bun's typings. */
    fd?: number;
    binaryType: "uint8array";
    socket: {
      data(socket: BunUdpSocket, data: Uint8Array, port: number, address: string): void;
      drain(socket: BunUdpSocket): void;
      error?(socket: BunUdpSocket, error: Error): void;
    };
  }): Promise<BunUdpSocket>;
};

/** A copy of a datagram the kernel could not take yet. */
interface Pending {
  data: Uint8Array;
  port: number;
  address: string;
}

export function bind(hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
  return open({ hostname, port }, onMessage);
}

/**
 * A Carrier (gso_windows.ts) of a socket made through libc: Bun.udpSocket reads it, as fast as
 * one it made itself. Rejects when Bun made a socket of its own instead (an option it ignored).
 */
export async function adopt(made: UdpSocket, onMessage: MessageHandler): Promise<Carrier> {
  const t = await open({ fd: made.fd }, onMessage);
  if (t.port !== made.port) {
    t.close();
    throw new Error(`Bun.udpSocket({ fd }) bound port ${t.port}, not the descriptor's ${made.port}`);
  }
  const ipv6 = made.family === 6;
  return {
    direct: true, // Bun copies into the kernel at once, or keeps the datagram in its backlog
    send: (data, port, address, done) => t.send(data, port, mapIPv4(address, ipv6), done),
    waiting: t.waiting,
    close: t.close,
  };
}

async function open(how: { hostname: string; port: number } | { fd: number }, onMessage: MessageHandler) {
  // Datagrams the kernel could not take yet, in order; sent again on `drain`.
  const backlog: Pending[] = [];
  let closed = false;
  const socket = await Bun.udpSocket({
    ...how,
    binaryType: "uint8array",
    socket: {
      data: (_s, data, fromPort, address) => onMessage(data, unmapIPv4(address), fromPort),
      drain: () => flush(),
      error: () => {}, // ICMP errors and the like: the transfer's retries cope
    },
  });
  function trySend(p: Pending): boolean {
    try {
      return socket.send(p.data, p.port, p.address);
    } catch {
      return true; // a bad address or a closed socket: drop it, TFTP retransmits
    }
  }
  function flush() {
    while (backlog.length > 0 && !closed) {
      if (!trySend(backlog[0])) return;
      backlog.shift();
    }
  }
  const transport: DatagramTransport & { waiting(): number } = {
    waiting: () => backlog.length,
    address: socket.address.address,
    port: socket.port,
    send(data, toPort, address, done) {
      const p = { data, port: toPort, address };
      if (closed) return queueMicrotask(done);
      // Bun copies into the kernel at once; `done` still comes later, never inside send(). What
      // waits is copied: the view is of WebAssembly memory, which a memory.grow would detach.
      if (!(backlog.length === 0 && trySend(p))) backlog.push({ ...p, data: data.slice() });
      queueMicrotask(done);
    },
    sendMany(datagrams, toPort, address, done) {
      if (closed || backlog.length > 0) {
        for (const d of datagrams) transport.send(d, toPort, address, done);
        return;
      }
      // One call for the window; what the kernel could not take waits for `drain`, in order.
      const flat: (Uint8Array | number | string)[] = [];
      for (const d of datagrams) flat.push(d, toPort, address);
      let sent = datagrams.length;
      try {
        sent = socket.sendMany(flat);
      } catch { /* dropped: TFTP retransmits */ }
      for (let i = 0; i < sent; i++) queueMicrotask(done);
      for (let i = sent; i < datagrams.length; i++) backlog.push({ data: datagrams[i].slice(), port: toPort, address }), queueMicrotask(done);
    },
    close() {
      if (closed) return;
      closed = true;
      socket.close();
      backlog.length = 0; // copies, whose senders were told already
    },
  };
  return transport;
}

export const runtime: Runtime = { bind, bindFd, ...standardTimers };
