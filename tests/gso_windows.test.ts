// Windows as one UDP GSO send each (adapters/gso_windows.ts), on Node, Deno and Bun, over real
// loopback sockets: the client gets the same bytes whichever path the server's datagrams take, and
// the path in use is the one the machine allows (node-plain, deno-plain and bun-plain in
// tests/run.mjs turn it off: EMMER_NATIVE=off).
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { Emmer, TftpClient } from "../mod.ts";
import { loadRuntime, runtimeName } from "../adapters/runtime.ts";
import { type Carrier, windowStats, windowTransport } from "../adapters/gso_windows.ts";
import { EAGAIN } from "../adapters/native/abi.ts";
import { bytesOf } from "./support/session_driver.ts";
import { within } from "./support/raw.ts";
import { decode, encodeAck, encodeRequest } from "../core/codec.ts";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCli, command } from "./support/cli_command.ts";

const plain = process.env.EMMER_NATIVE === "off";

test("the datagram path is the one this machine and run allow", async () => {
  const path = (await loadRuntime()).datagramPath;
  assert.ok(path, "the runtime says how datagrams leave");
  if (plain) assert.equal([path!.path, path!.detail], ["per-datagram", "disabled: EMMER_NATIVE=off"]);
  // Node with koffi, Deno with -A (Deno.dlopen), or Bun (bun:ffi is built in), on Linux x86_64 as in
  // CI: windows must go out by GSO.
  else if (process.env.CI === "true" || path!.path === "gso") assert.is(path!.path, "gso", path!.detail);
  if (runtimeName() === "deno" && path!.path === "gso") assert.match(path!.detail, /Deno\.listenDatagram's sockets/);
});

/**
 * A send buffer and a runtime socket, scripted: each GSO send takes as many segments as the next
 * allowance says (then EAGAIN), and the carrier holds what it is given until flush(), as Bun's
 * backlog waits for `drain` and node:dgram for its loop turn. The wire is the order the peer sees.
 */
function scripted(allowances: number[], { direct = false } = {}) {
  const wire: number[] = [];
  const blockOf = (d: Uint8Array) => (d[2] << 8) | d[3];
  const held: { data: Uint8Array; done: () => void }[] = [];
  const native = {
    sendSegmented(_fd: number, buffer: Uint8Array, size: number) {
      const total = Math.ceil(buffer.length / size);
      const sent = Math.min(total, allowances.shift() ?? total);
      for (let k = 0; k < sent; k++) wire.push(blockOf(buffer.subarray(k * size)));
      return { sent, errno: sent < total ? EAGAIN : 0 };
    },
  };
  // A direct carrier (Bun.udpSocket) puts a datagram in the kernel at once while it holds none.
  const carrier: Carrier = {
    direct,
    send: (data, _port, _address, done) => {
      held.push({ data, done });
      if (direct && held.length === 1) flush();
    },
    waiting: () => held.length,
    close: () => {},
  };
  function flush(n = held.length) {
    for (const h of held.splice(0, n)) wire.push(blockOf(h.data)), h.done();
  }
  return { wire, native, carrier, flush };
}

/** `count` DATA packets of `size` bytes from block `first`, laid out in a ring of `slots` slots from slot `at`. */
function ringWindow(first: number, count: number, size: number, slots: number, at: number): Uint8Array[] {
  const ring = new Uint8Array(slots * size);
  return Array.from({ length: count }, (_, i) => {
    const slot = (at + i) % slots;
    const d = ring.subarray(slot * size, (slot + 1) * size);
    d[1] = 3;
    d[2] = (first + i) >> 8;
    d[3] = (first + i) & 0xff;
    return d;
  });
}

test("a GSO send the kernel cuts short: the rest, and every send after it, queue behind the carrier", () => {
  // 5 segments go, then EAGAIN; later sends would find room, but must not overtake what the carrier holds.
  const { wire, native, carrier, flush } = scripted([5]);
  const t = windowTransport(native, { fd: 3, family: 4, address: "127.0.0.1", port: 1 }, carrier);
  let done = 0;
  const count = () => done++;
  const gsoBefore = windowStats.gsoDatagrams;
  // Blocks 1-16 in a ring of 20 slots from slot 12: a run of 8, then the wrap, a run of 8.
  t.sendMany!(ringWindow(1, 16, 516, 20, 12), 69, "127.0.0.1", count);
  assert.equal(wire, [1, 2, 3, 4, 5], "the kernel took 5");
  assert.is(done, 5, "the bytes the kernel copied are free at once");
  flush(3);
  t.send(ringWindow(17, 1, 516, 1, 0)[0], 69, "127.0.0.1", count); // a lone datagram, while 8 are held
  assert.equal(wire, [1, 2, 3, 4, 5, 6, 7, 8], "nothing overtook the held blocks");
  flush();
  assert.equal(wire, Array.from({ length: 17 }, (_, i) => i + 1));
  assert.is(done, 17);
  // Once the carrier is empty, windows take the GSO path again.
  t.sendMany!(ringWindow(18, 4, 516, 8, 0), 69, "127.0.0.1", count);
  assert.equal(wire.slice(17), [18, 19, 20, 21]);
  assert.is(windowStats.gsoDatagrams - gsoBefore, 9);
  assert.is(done, 21);
});

test("a direct carrier takes lone datagrams (lock-step), windows still go by GSO", () => {
  const { wire, native, carrier } = scripted([], { direct: true });
  const t = windowTransport(native, { fd: 3, family: 4, address: "127.0.0.1", port: 1 }, carrier);
  let done = 0;
  const count = () => done++;
  const gsoBefore = windowStats.gsoDatagrams;
  t.send(ringWindow(1, 1, 516, 1, 0)[0], 69, "127.0.0.1", count);
  assert.equal(wire, [1]);
  assert.is(windowStats.gsoDatagrams - gsoBefore, 0, "a lone datagram took the carrier");
  t.sendMany!(ringWindow(2, 4, 516, 8, 0), 69, "127.0.0.1", count);
  // Blocks 6-8 in a ring of 4 slots from slot 2: a run of 2, the wrap, then one alone.
  t.sendMany!(ringWindow(6, 3, 516, 4, 2), 69, "127.0.0.1", count);
  assert.equal(wire, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.is(windowStats.gsoDatagrams - gsoBefore, 6, "runs of 4 and 2 by GSO");
  assert.is(done, 8);
});

// [blksize, windowsize, size]: windows that fill the ring, a last short block, a ring that wraps
const cases: [number, number, number][] = [
  [1468, 16, 3_000_000],
  [512, 64, 1_000_003],
  [8, 4, 65535 * 8 + 1],
  [65464, 2, 400_000],
];
for (const [blksize, windowsize, size] of cases) {
  test(`a read at blksize ${blksize}, windowsize ${windowsize}, ${size} bytes: the same bytes on either path`, async () => {
    const body = bytesOf(size, blksize);
    const app = new Emmer({ hostname: "127.0.0.1", port: 0, maxWindowsize: 64, metrics: true });
    app.read("f", () => body);
    await app.listen();
    const before = windowStats.gsoDatagrams;
    try {
      const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 1000 });
      const { data } = await client.get("f", { blksize, windowsize });
      assert.is(data.length, size);
      assert.ok(data.every((b, i) => b === body[i]), "bytes differ");
      const path = (await loadRuntime()).datagramPath;
      const viaGso = windowStats.gsoDatagrams - before;
      if (path?.path === "gso") assert.ok(viaGso > 0, "no window went out by GSO");
      else assert.is(viaGso, 0, "GSO sends on the per-datagram path");
      // The metrics say the same.
      const metric = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(app.metrics!.render())?.[1]);
      assert.is(metric("emmer_gso_datagrams_total"), windowStats.gsoDatagrams);
      assert.is(metric("emmer_gso_sends_total"), windowStats.gsoSends);
    } finally {
      await app.close();
    }
  });
}

// A window's blocks must reach the client in order whatever path each takes: a ring's wrap
// splits a window, and a datagram the runtime's socket still holds must not be overtaken by a GSO
// send after it. Loopback keeps the order the sender made, so a block that arrives before the one
// due is the server's doing. A block that comes again is not: when this process (client and server
// both) stalls past PROBE_MS on a loaded machine, the server resends the window early, from the
// first block not acknowledged.
for (const windowsize of [3, 4, 16]) {
  test(`windowsize ${windowsize}: every DATA arrives in order (ring wraps included)`, async () => {
    const size = 700_001;
    const app = new Emmer({ hostname: "127.0.0.1", port: 0 });
    app.read("f", () => bytesOf(size, 5));
    await app.listen();
    const rt = await loadRuntime();
    const order: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    let serverPort = 0;
    const sock = await rt.bind("127.0.0.1", 0, (data, _a, port) => {
      const p = decode(data);
      serverPort = port;
      if (p.op === 6) return sock.send(encodeAck(0), port, "127.0.0.1", () => {});
      if (p.op !== 3) return;
      order.push(p.block);
      const last = p.payload.length < 512;
      if (last || p.block % windowsize === 0) sock.send(encodeAck(p.block), port, "127.0.0.1", () => {});
      if (last) done();
    });
    try {
      sock.send(encodeRequest(1, "f", "octet", { windowsize: String(windowsize) }), app.address!.port, "127.0.0.1", () => {});
      await within(rt, finished, 20_000, "last block");
      const blocks = Math.floor(size / 512) + 1;
      let due = 1;
      for (const b of order) {
        assert.ok(b <= due, `block ${b} came where ${due} was due`);
        if (b === due) due++;
      }
      assert.is(due, blocks + 1, "every block came");
      assert.ok(serverPort !== app.address!.port);
    } finally {
      sock.close();
      await app.close();
    }
  });
}

test("emmer-node --verbose says how datagrams go out", async () => {
  assert.ok(buildCli(), "the CLI bundle is missing");
  const dir = mkdtempSync(join(tmpdir(), "emmer-path-"));
  const child = spawn(process.execPath, [...command, "--verbose", "--host", "127.0.0.1", "--port", "0", "--root", dir], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const line = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /datagrams go out [^\n]*/.exec(out);
      if (m) resolve(m[0]);
    });
    child.on("exit", (code) => reject(new Error(`exited ${code} before the line: ${out}`)));
  });
  try {
    const rt = await loadRuntime();
    const got = await within(rt, line, 20_000, "datagram path line");
    const path = (await loadRuntime()).datagramPath;
    if (plain) assert.is(got, "datagrams go out one per send (disabled: EMMER_NATIVE=off)");
    else assert.is(got, path!.path === "gso" ? `datagrams go out a window per send (${path!.detail})` : `datagrams go out one per send (${path!.detail})`);
  } finally {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
