// The WASM codec against the TypeScript reference codec (tests/support/), in
// operations per second, per operation, in one process.
//   npx tsx bench/codec.ts   (npm run bench runs it)
import { decode, encodeAck, encodeOack, encodeRequest, memory, netasciiEncode, wasm } from "../core/codec.ts";
import { ARENA_BASE } from "../core/codec.ts";
import * as ref from "../tests/support/reference_codec.ts";

function rate(fn: () => void, ms = 400): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
  }
  return n / (ms / 1000);
}

const ack = encodeAck(1234);
const rrq = encodeRequest(1, "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", "octet", { blksize: "1468", tsize: "0", windowsize: "16", timeout: "1" });
const data = new Uint8Array(1472);
data[1] = 3;
const text = new TextEncoder().encode("a line of a config file\r\nwith LF and CR\r\n".repeat(400));

// Block slicing: headers for a window of 16 blocks written in place in a ring, WASM vs a JS loop.
const stride = 1472;
const ring = ARENA_BASE;
const sliceWasm = () => wasm.writeDataHeaders(ring, stride, 32, 5, 1000, 16);
const sliceJs = () => {
  const mem = memory();
  for (let i = 0, slot = 5, seq = 1000; i < 16; i++, slot = (slot + 1) % 32, seq++) {
    const p = ring + slot * stride;
    mem[p] = 0;
    mem[p + 1] = 3;
    mem[p + 2] = (seq >> 8) & 0xff;
    mem[p + 3] = seq & 0xff;
  }
};

const rows: [string, number, number][] = [
  ["decode ACK (4 bytes)", rate(() => decode(ack)), rate(() => ref.decode(ack))],
  ["decode DATA header (1472 bytes)", rate(() => decode(data)), rate(() => ref.decode(data))],
  ["decode RRQ with 4 options", rate(() => decode(rrq)), rate(() => ref.decode(rrq))],
  ["encode OACK", rate(() => encodeOack({ blksize: "1468", windowsize: "16" })), rate(() => ref.encodeOack({ blksize: "1468", windowsize: "16" }))],
  ["DATA headers for a window of 16", rate(sliceWasm), rate(sliceJs)],
  [`netascii encode (${text.length} bytes)`, rate(() => netasciiEncode(text)), rate(() => ref.netasciiEncode(text))],
];
console.log("\nCodec: operations per second, WASM (core/codec.ts) and the TypeScript reference (tests/support/reference_codec.ts)\n");
console.log("| operation | WASM (ops/s) | TypeScript (ops/s) | WASM / TS |");
console.log("|---|---:|---:|---:|");
for (const [name, w, t] of rows) console.log(`| ${name} | ${Math.round(w).toLocaleString("en")} | ${Math.round(t).toLocaleString("en")} | ${(w / t).toFixed(2)}x |`);
