/**
 * Node's UDP sockets (node:dgram) behind core/transport.ts.
 */
import dgram from "node:dgram";
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { standardTimers } from "./timers.ts";
import { mapIPv4, unmapIPv4 } from "./ipv4_mapped.ts";
import { udpFamily } from "./listen_fds.ts";

/** Room for a window of large blocks in flight, and for a boot storm's requests. */
const SOCKET_BUFFER = 4 * 1024 * 1024;

/**
 * Peers are always IP literals (they come from received datagrams), so name
 * resolution is pointless: the default dns.lookup defers every send by a
 * process.nextTick just to hand the literal back. Answering synchronously
 * takes that tick and its closure off the per-packet path.
 */
function literalLookup(
  address: string,
  _family: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, address.includes(":") ? 6 : 4);
}

export function bind(hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
  // Under node:cluster a bind is shared by every worker unless exclusive: the listening
  // port should be (workers take turns at requests), but a transfer's port 0 must not be,
  // or every transfer in every worker would land on one shared socket.
  return open(hostname.includes(":"), { port, address: hostname, exclusive: port === 0 }, onMessage);
}

/** A socket already bound, by file descriptor: the one systemd passes (socket activation). */
export function bindFd(fd: number, onMessage: MessageHandler): Promise<DatagramTransport> {
  let ipv6: boolean;
  try {
    ipv6 = udpFamily(fd) === 6; // node:dgram must be told the family, and cannot ask the descriptor
  } catch (error) {
    return Promise.reject(error);
  }
  return open(ipv6, { fd }, onMessage);
}

function open(ipv6: boolean, how: dgram.BindOptions, onMessage: MessageHandler): Promise<DatagramTransport> {
  const socket = dgram.createSocket({ type: ipv6 ? "udp6" : "udp4", lookup: literalLookup });
  return new Promise((resolve, reject) => {
    const failed = (error: Error) => {
      socket.close();
      reject(error);
    };
    socket.once("error", failed);
    socket.bind(how, () => {
      socket.off("error", failed);
      // Errors after binding (ICMP unreachable reports, sends to bad addresses) are not fatal:
      // the transfer that caused them times out or retransmits.
      socket.on("error", () => {});
      try {
        socket.setRecvBufferSize(SOCKET_BUFFER);
        socket.setSendBufferSize(SOCKET_BUFFER);
      } catch { /* the kernel caps these; defaults work, only slower under bursts */ }
      socket.on("message", (msg, rinfo) => onMessage(msg, unmapIPv4(rinfo.address), rinfo.port));
      const local = socket.address();
      let closed = false;
      resolve({
        address: local.address,
        port: local.port,
        send(data, port, address, done) {
          if (closed) return done();
          try {
            socket.send(data, port, mapIPv4(address, ipv6), done);
          } catch {
            done(); // e.g. a malformed address: the transfer's retries handle it
          }
        },
        close() {
          if (closed) return;
          closed = true;
          socket.close();
        },
      });
    });
  });
}

export const runtime: Runtime = { bind, bindFd, ...standardTimers };
