// What one UDP GSO send of a 16-block window costs the sender, against 16
// sends through node:dgram: sender CPU (process.cpuUsage) per block over
// windows of 16 x 1472-byte datagrams (blksize 1468) to a node:dgram receiver
// in another process, which answers each whole window with one datagram (as a
// TFTP client ACKs a window), so both paths deliver everything and pay the
// same receive cost. Pin both ends to one CPU so the receiver's work cannot
// hide on the other one. One sendmmsg of the 16 datagrams is measured too:
// what a single-port server batching across transfers would pay per datagram.
// Run it as:
//   taskset -c 0 node node_modules/tsx/dist/cli.mjs bench/gso_send.ts [--windows 3000 --rounds 3]
// (the receiver inherits the affinity). Node with koffi only.
import dgram from "node:dgram";
import { spawn } from "node:child_process";
import process from "node:process";
import { loadNative } from "../adapters/native/detect.ts";
import { adoptSocket } from "../adapters/native/handoff.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const WINDOWS = arg("--windows", 3000);
const ROUNDS = arg("--rounds", 3);
const BLOCKS = 16, SEGMENT = 1472;

const { native, detection } = await loadNative();
if (!native || !detection.gso.ok) {
  console.log(`gso_send: no GSO here: ${detection.gso.why}`);
  process.exit(0);
}

const receiverCode = `
const s = require("node:dgram").createSocket("udp4");
let n = 0;
s.on("message", (m, r) => { if (++n % ${BLOCKS} === 0) s.send(Buffer.of(1), r.port, r.address); });
s.bind(0, "127.0.0.1", () => { s.setRecvBufferSize(4 << 20); process.stdout.write(String(s.address().port) + "\\n"); });
`;
const receiver = spawn(process.execPath, ["-e", receiverCode], { stdio: ["ignore", "pipe", "inherit"] });
const killer = setTimeout(() => receiver.kill(), 10 * 60_000);
const port = await new Promise<number>((ok) => receiver.stdout!.once("data", (d) => ok(Number(String(d).trim()))));

const window = new Uint8Array(BLOCKS * SEGMENT);
for (let b = 0; b < BLOCKS; b++) window.set([0, 3, 0, b + 1], b * SEGMENT);

const datagrams = Array.from({ length: BLOCKS }, (_, b) => ({ data: window.subarray(b * SEGMENT, (b + 1) * SEGMENT), address: "127.0.0.1", port }));

// The GSO path: a socket the module made, read by node:dgram (the ACKs), written by sendGso.
const own = native.openUdp("127.0.0.1", 0);
const gsoSocket = await adoptSocket(own);
const plain = dgram.createSocket("udp4");
await new Promise<void>((ok) => plain.bind(0, "127.0.0.1", ok));

function acked(socket: dgram.Socket): Promise<void> {
  return new Promise((ok) => socket.once("message", () => ok()));
}

const paths = {
  "node:dgram, 16 send() calls": async () => {
    for (let w = 0; w < WINDOWS; w++) {
      const ack = acked(plain);
      for (let b = 0; b < BLOCKS; b++) plain.send(window.subarray(b * SEGMENT, (b + 1) * SEGMENT), port, "127.0.0.1");
      await ack;
    }
  },
  "one GSO send (koffi)": async () => {
    for (let w = 0; w < WINDOWS; w++) {
      const ack = acked(gsoSocket);
      const r = native.sendGso(own.fd, window, SEGMENT, "127.0.0.1", port);
      if (r.errno) throw new Error(`GSO send: errno ${r.errno}`);
      await ack;
    }
  },
  "one sendmmsg of 16 (koffi)": async () => {
    for (let w = 0; w < WINDOWS; w++) {
      const ack = acked(gsoSocket);
      const r = native.sendmmsg(own.fd, datagrams);
      if (r.errno) throw new Error(`sendmmsg: errno ${r.errno}`);
      await ack;
    }
  },
};

const results: Record<string, { cpu: number[]; wall: number[] }> = {};
for (const name of Object.keys(paths)) results[name] = { cpu: [], wall: [] };
for (let round = 0; round <= ROUNDS; round++) {
  for (const [name, run] of Object.entries(paths)) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    await run();
    const c = process.cpuUsage(c0), wall = performance.now() - t0;
    if (round === 0) continue; // warm-up
    results[name].cpu.push((c.user + c.system) / (WINDOWS * BLOCKS));
    results[name].wall.push((wall * 1000) / (WINDOWS * BLOCKS));
  }
}
clearTimeout(killer);
receiver.kill();
plain.close();
gsoSocket.close();

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nSender per block, ${WINDOWS} windows of ${BLOCKS} x ${SEGMENT} bytes, median of ${ROUNDS} rounds (µs)\n`);
console.log("| path | sender CPU per block | wall per block |");
console.log("|---|---:|---:|");
for (const [name, r] of Object.entries(results)) console.log(`| ${name} | ${med(r.cpu).toFixed(2)} | ${med(r.wall).toFixed(2)} |`);
