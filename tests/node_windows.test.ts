// Windows as one UDP GSO send each (adapters/node_windows.ts), over real loopback sockets: the
// client gets the same bytes whichever path the server's datagrams take, and the path in use is
// the one the machine allows (node-plain in tests/run.mjs turns it off: EMMER_NATIVE=off).
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { Emmer, TftpClient } from "../mod.ts";
import { loadRuntime, runtimeName } from "../adapters/runtime.ts";
import { windowStats } from "../adapters/node_windows.ts";
import { bytesOf } from "./support/session_driver.ts";
import { within } from "./support/raw.ts";
import { decode, encodeAck, encodeRequest } from "../core/codec.ts";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCli, command } from "./support/cli_command.ts";

const plain = process.env.EMMER_NATIVE === "off";
const onNode = runtimeName() === "node";

test("the datagram path is the one this machine and run allow", async () => {
  const path = (await loadRuntime()).datagramPath;
  if (!onNode) {
    assert.is(path, undefined, "only Node's adapter has a batch path so far");
    return;
  }
  assert.ok(path, "Node's runtime says how datagrams leave");
  if (plain) assert.equal([path!.path, path!.detail], ["per-datagram", "disabled: EMMER_NATIVE=off"]);
  // Node with koffi on Linux x86_64 (CI installs it): windows must go out by GSO.
  else if (process.env.CI === "true" || path!.path === "gso") assert.is(path!.path, "gso", path!.detail);
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
    const app = new Emmer({ hostname: "127.0.0.1", port: 0, maxWindowsize: 64 });
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
    } finally {
      await app.close();
    }
  });
}

// A window's blocks must reach the client in order whatever path each takes: a ring's wrap
// splits a window, and a datagram sent by node:dgram must not be overtaken by a GSO send after it.
// Loopback keeps the order the sender made, so any block out of order here is the server's doing.
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
      const outOfOrder = order.findIndex((b, i) => b !== i + 1);
      assert.is(outOfOrder, -1, `block ${order[outOfOrder]} came where ${outOfOrder + 1} was due`);
      assert.is(order.length, blocks);
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
    if (!onNode) assert.match(got, /one per send/);
    else if (plain) assert.is(got, "datagrams go out one per send (disabled: EMMER_NATIVE=off)");
    else assert.is(got, path!.path === "gso" ? `datagrams go out a window per send (${path!.detail})` : `datagrams go out one per send (${path!.detail})`);
  } finally {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
