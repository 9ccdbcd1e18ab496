/**
 * Sockets for transfers: any free port, or a free one of a range (a firewall's
 * opening), tried in turn from where the last search ended. Ports of the range
 * held by our own live sockets are skipped without asking the system.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";

export class PortPool {
  #rt: Runtime;
  #range: [number, number] | undefined;
  #taken = new Set<number>();
  #next = 0;

  constructor(runtime: Runtime, range?: [number, number]) {
    this.#rt = runtime;
    this.#range = range;
  }

  async bind(host: string, onMessage: MessageHandler, maxDatagram: number): Promise<DatagramTransport> {
    const range = this.#range;
    if (range === undefined) return this.#rt.bind(host, 0, onMessage, maxDatagram);
    const [first, last] = range;
    const count = last - first + 1;
    let failure: unknown = null;
    for (let i = 0; i < count; i++) {
      const port = first + ((this.#next + i) % count);
      if (this.#taken.has(port)) continue;
      this.#taken.add(port);
      try {
        const t = await this.#rt.bind(host, port, onMessage, maxDatagram);
        this.#next = (port - first + 1) % count;
        const taken = this.#taken;
        return {
          address: t.address,
          port: t.port,
          send: (data, toPort, address, done) => t.send(data, toPort, address, done),
          sendMany: t.sendMany ? (datagrams, toPort, address, done) => t.sendMany!(datagrams, toPort, address, done) : undefined,
          close() {
            taken.delete(port);
            t.close();
          },
        };
      } catch (error) {
        this.#taken.delete(port); // another program's: tried again next time
        failure = error;
      }
    }
    throw new Error(`every port of the range ${first}-${last} is in use${failure ? ` (${(failure as Error).message ?? failure})` : ""}`);
  }
}
