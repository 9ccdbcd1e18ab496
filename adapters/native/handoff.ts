/**
 * Hands a socket this module made to the runtime's node:dgram (bind({ fd })), so
 * the runtime's event loop reads it while sends may still take the batch path on
 * the same descriptor. Node and Bun take a descriptor there; Deno's node:dgram
 * refuses it ("Unsupported fd type"), and Deno.listenDatagram takes none: on Deno
 * the module reads the socket itself (Libc.watch). No private handle is touched.
 */
import dgram from "node:dgram";
import type { UdpSocket } from "./datagrams.ts";

/** The node:dgram socket now owning `socket.fd`: close it through this object only. */
export function adoptSocket(socket: UdpSocket): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    let s: dgram.Socket;
    try {
      s = dgram.createSocket({ type: socket.family === 6 ? "udp6" : "udp4" });
    } catch (error) {
      return reject(error);
    }
    const failed = (error: Error) => reject(error);
    s.once("error", failed);
    try {
      s.bind({ fd: socket.fd }, () => {
        s.off("error", failed);
        resolve(s);
      });
    } catch (error) {
      reject(error);
    }
  });
}
