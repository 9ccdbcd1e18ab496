// Real clients (curl, tftp-hpa, atftp, busybox) against Emmer on 127.0.0.1,
// every file checked by sha256. A missing client skips its tests on a
// developer's machine and fails them in CI (CI=true).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Emmer, serveDir } from "../mod.ts";
import { failed, get, hasPeer, type Peer, put, run, type TransferOptions } from "./support/peers.ts";
import { bytesOf } from "./support/session_driver.ts";

const CI = process.env.CI === "true";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let top = "";
let root = "";
let app: Emmer;
let port = 0;
const files: Record<string, Uint8Array> = {};

test.before(async () => {
  top = await mkdtemp(join(tmpdir(), "emmer-interop-"));
  root = join(top, "root");
  await (await import("node:fs/promises")).mkdir(root);
  files["small.bin"] = bytesOf(3 * 1024 * 1024 + 77, 11);
  files["exact.bin"] = bytesOf(1468 * 100, 12); // a multiple of blksize 1468: ends with an empty DATA
  files["rollover.bin"] = bytesOf(40 * 1024 * 1024, 13); // 81920 blocks of 512: the block number wraps
  files["empty.bin"] = new Uint8Array(0);
  files["lines.txt"] = new TextEncoder().encode("first line\nsecond line\r\nbare CR\rlast\n".repeat(2000));
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(root, name), bytes);
  app = new Emmer({ port: 0, onError: () => {}, drainTimeout: 500 });
  const dir = serveDir(root, { write: true });
  app.read("*", dir.read);
  app.write("*", dir.write!);
  await app.listen();
  port = app.address!.port;
});

test.after(async () => {
  await app.close();
  await rm(top, { recursive: true, force: true });
});

/** Registers a test that needs `peer`: skipped without it, except in CI where that fails. */
function peerTest(peer: Peer, name: string, fn: () => Promise<void>) {
  const title = `${peer}: ${name}`;
  if (hasPeer(peer)) test(title, fn);
  else if (CI) test(title, () => assert.unreachable(`${peer} is not installed (CI must install it: .ci/install-peers.sh)`));
  else test.skip(title);
}

async function download(peer: Peer, remote: string, o: Partial<TransferOptions> = {}): Promise<Uint8Array> {
  const local = join(top, `got-${peer}-${Math.random().toString(36).slice(2)}`);
  const r = await get(peer, { host: "127.0.0.1", port, remote, local, timeoutMs: 60_000, ...o });
  assert.not.ok(failed(peer, r), `${peer} failed: exit ${r.code} ${r.stdout} ${r.stderr}`);
  const bytes = new Uint8Array(await readFile(local));
  await rm(local, { force: true });
  return bytes;
}

async function upload(peer: Peer, remote: string, bytes: Uint8Array, o: Partial<TransferOptions> = {}) {
  const local = join(top, `put-${peer}-${Math.random().toString(36).slice(2)}`);
  await writeFile(local, bytes);
  const r = await put(peer, { host: "127.0.0.1", port, remote, local, timeoutMs: 60_000, ...o });
  await rm(local, { force: true });
  assert.not.ok(failed(peer, r), `${peer} failed: exit ${r.code} ${r.stdout} ${r.stderr}`);
  assert.is(sha(new Uint8Array(await readFile(join(root, remote)))), sha(bytes), `${remote} differs after the upload`);
}

for (const blksize of [512, 1468, 65464]) {
  peerTest("curl", `get at blksize ${blksize}`, async () => {
    assert.is(sha(await download("curl", "small.bin", { blksize })), sha(files["small.bin"]));
  });
}
// curl refuses an OACK with tsize 0 ("invalid tsize", exit 71): an empty file's tsize is left out.
peerTest("curl", "get of an empty file with curl's default options (tsize 0, blksize 512, timeout 6)", async () => {
  assert.is((await download("curl", "empty.bin", { tsize: true })).length, 0);
});
peerTest("curl", "get of an empty file asking tsize and blksize 1468", async () => {
  assert.is((await download("curl", "empty.bin", { tsize: true, blksize: 1468 })).length, 0);
});
for (const [peer, o] of [["tftp-hpa", {}], ["atftp", { tsize: true }], ["atftp", { tsize: true, blksize: 1468, windowsize: 4 }], ["busybox", {}]] as const) {
  peerTest(peer, `get of an empty file (${JSON.stringify(o)})`, async () => {
    assert.is((await download(peer, "empty.bin", o)).length, 0);
  });
}
peerTest("curl", "get of an exact multiple of blksize 1468", async () => {
  assert.is(sha(await download("curl", "exact.bin", { blksize: 1468 })), sha(files["exact.bin"]));
});
peerTest("curl", "get with no options at all (RFC 1350 defaults)", async () => {
  assert.is(sha(await download("curl", "small.bin", { tsize: false })), sha(files["small.bin"]));
});
peerTest("curl", "get of 40 MiB at blksize 512: block numbers roll over", async () => {
  assert.is(sha(await download("curl", "rollover.bin", { blksize: 512 })), sha(files["rollover.bin"]));
});
peerTest("curl", "a missing file is ERROR 1 (curl exits 68)", async () => {
  const r = await get("curl", { host: "127.0.0.1", port, remote: "nope.bin", local: join(top, "nope"), timeoutMs: 20_000 });
  assert.is(r.code, 68);
});

peerTest("tftp-hpa", "get in octet mode", async () => {
  assert.is(sha(await download("tftp-hpa", "small.bin", { mode: "octet" })), sha(files["small.bin"]));
});
peerTest("tftp-hpa", "get in netascii mode gives back the same lines", async () => {
  assert.is(sha(await download("tftp-hpa", "lines.txt", { mode: "netascii" })), sha(files["lines.txt"]));
});
peerTest("tftp-hpa", "put in octet mode", async () => {
  await upload("tftp-hpa", "from-hpa.bin", bytesOf(1_000_000, 21), { mode: "octet" });
});
peerTest("tftp-hpa", "put in netascii mode stores the lines as they were", async () => {
  await upload("tftp-hpa", "from-hpa.txt", files["lines.txt"], { mode: "netascii" });
});
peerTest("tftp-hpa", "a put, then a get of it, in one session: the second request, from the same port, is answered", async () => {
  const body = bytesOf(100_000, 24);
  const local = join(top, "session");
  await writeFile(join(top, "session.put"), body);
  // Retransmit every second and give up after 2 s: shorter than the 3 s the upload dallies
  // after its last ACK, so a request taken for a repeat of the upload's would fail.
  const commands = `rexmt 1\ntimeout 2\nput ${local}.put from-session.bin\nget from-session.bin ${local}.got\n`;
  const r = await run("tftp", ["-m", "octet", "127.0.0.1", String(port)], 20_000, commands);
  assert.not.ok(failed("tftp-hpa", r), `tftp-hpa failed: exit ${r.code} ${r.stdout} ${r.stderr}`);
  assert.is(sha(new Uint8Array(await readFile(join(root, "from-session.bin")))), sha(body), "the put");
  assert.is(sha(new Uint8Array(await readFile(`${local}.got`))), sha(body), "the get");
});

peerTest("atftp", "get with windowsize 16, blksize 1468 and tsize", async () => {
  assert.is(sha(await download("atftp", "small.bin", { blksize: 1468, windowsize: 16, tsize: true })), sha(files["small.bin"]));
});
peerTest("atftp", "get of 40 MiB with windowsize 16 at blksize 512: rollover in windows", async () => {
  assert.is(sha(await download("atftp", "rollover.bin", { blksize: 512, windowsize: 16 })), sha(files["rollover.bin"]));
});
peerTest("atftp", "put with windowsize 8 and tsize", async () => {
  await upload("atftp", "from-atftp.bin", bytesOf(2_000_000, 22), { blksize: 1468, windowsize: 8, tsize: true });
});

peerTest("busybox", "get at blksize 1468", async () => {
  assert.is(sha(await download("busybox", "small.bin", { blksize: 1468 })), sha(files["small.bin"]));
});
peerTest("busybox", "put", async () => {
  await upload("busybox", "from-busybox.bin", bytesOf(500_000, 23));
});
peerTest("busybox", "a missing file fails the client (exit 1)", async () => {
  const r = await get("busybox", { host: "127.0.0.1", port, remote: "nope.bin", local: join(top, "nope-bb"), timeoutMs: 20_000 });
  assert.is(r.code, 1);
});

test.run();
