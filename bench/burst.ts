// A repro of requests lost in bursts (BENCHMARKS.md, section 5): 1,000 RRQs
// from 1,000 pre-bound sockets, sent in bursts, counted where they arrive.
//   npx tsx bench/burst.ts [BURST] [emmer|single|raw]
//   emmer: a new socket per transfer (the default server); single: --single-port; raw: a plain dgram socket
import dgram from "node:dgram";
import { Emmer } from "../drivers/app.ts";
import { runtime as node } from "../adapters/node.ts";
import type { MessageHandler } from "../core/transport.ts";

const BURST = Number(process.argv[2] ?? 100);
const MODE = process.argv[3] ?? "emmer";
let arrived = 0;
let port: number;
if (MODE === "raw") {
  const raw = dgram.createSocket("udp4");
  raw.on("message", () => arrived++);
  await new Promise<void>((r) => raw.bind(0, "127.0.0.1", () => r()));
  port = raw.address().port;
} else {
  let first = true;
  // Counts what reaches the listening socket's handler (the first socket the engine binds).
  const runtime = {
    ...node,
    bind: (host: string, p: number, on: MessageHandler) => {
      const listening = first;
      first = false;
      return node.bind(host, p, (d, a, pp) => (listening && arrived++, on(d, a, pp)));
    },
  };
  const app = new Emmer({ runtime, port: 0, singlePort: MODE === "single", timeout: 30, maxSessions: 100_000, maxRequestsPerSecond: 1_000_000, onError: () => {} });
  app.read("*", () => new Uint8Array(4 << 20));
  await app.listen();
  port = app.address!.port;
}
const request = new TextEncoder().encode("\0\x01kernel.img\0octet\0");
const sockets: dgram.Socket[] = [];
for (let n = 0; n < 1000; n++) {
  const s = dgram.createSocket("udp4");
  s.on("message", () => {});
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  sockets.push(s);
}
for (let n = 0; n < 1000; n++) {
  sockets[n].send(request, port, "127.0.0.1");
  if (n % BURST === BURST - 1) await new Promise((r) => setTimeout(r, BURST));
}
await new Promise((r) => setTimeout(r, 1000));
console.log(`${MODE}, bursts of ${BURST}: ${arrived} of 1000 requests arrived`);
process.exit(0);
