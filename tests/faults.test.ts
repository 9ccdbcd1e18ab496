// Transfers through a lossy network: a seeded proxy drops 10%, duplicates 5%
// and reorders 5% of the datagrams in both directions. Every transfer must end
// either complete and sha256-identical or failed with an ERROR; an upload that
// failed must leave nothing stored.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Emmer, TftpClient, TftpError } from "../mod.ts";
import { startProxy } from "./support/lossy_proxy.ts";
import { int, pick, rng } from "./support/random_packets.ts";
import { bytesOf } from "./support/session_driver.ts";
import { get, hasPeer } from "./support/peers.ts";
import { testNeeding } from "./support/needs.ts";

const SEED = Number(process.env.EMMER_FAULT_SEED ?? 20261124);
const TRANSFERS = Number(process.env.EMMER_FAULT_TRANSFERS ?? 200);
const CONCURRENCY = 10;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test(`${TRANSFERS} reads and writes through 10% loss, 5% duplication, 5% reordering (seed ${SEED})`, async () => {
  const files = new Map<string, Uint8Array>();
  const stored = new Map<string, Uint8Array>();
  const app = new Emmer({ port: 0, timeout: 0.1, retries: 12, drainTimeout: 200, onError: () => {} });
  app.read("*", ({ filename }) => files.get(filename) ?? null);
  app.write("*", async ({ filename, body }) => {
    // Stored only once complete: a failed upload must leave nothing.
    stored.set(filename, new Uint8Array(await new Response(body).arrayBuffer()));
  });
  await app.listen();
  const proxy = await startProxy(app.address!.port, { loss: 0.1, duplicate: 0.05, reorder: 0.05, maxDelayMs: 30, seed: SEED });
  const client = new TftpClient("127.0.0.1", proxy.port, { timeoutMs: 100, retries: 12 });
  const r = rng(SEED);
  const plan = Array.from({ length: TRANSFERS }, (_, i) => {
    const blksize = pick(r, [512, 1468] as const);
    const windowsize = pick(r, [1, 16] as const);
    // Sizes around the block size, exact multiples, and a few larger files.
    const size = pick(r, [0, 1, blksize - 1, blksize, blksize + 1, 3 * blksize, int(r, 0, 40_000), int(r, 40_000, 120_000)]);
    return { i, kind: pick(r, ["read", "write"] as const), blksize, windowsize, body: bytesOf(size, SEED + i) };
  });
  const outcome = { ok: 0, failed: 0, corrupt: [] as string[] };
  let next = 0;
  async function worker() {
    while (next < plan.length) {
      const p = plan[next++];
      const name = `f${p.i}`;
      const opts = { blksize: p.blksize, windowsize: p.windowsize, tsize: true };
      try {
        if (p.kind === "read") {
          files.set(name, p.body);
          const got = await client.get(name, opts);
          if (sha(got.data) !== sha(p.body)) outcome.corrupt.push(`${name}: read ${got.data.length} of ${p.body.length} bytes`);
        } else {
          await client.put(name, p.body, opts);
          // The client has the last ACK: the server's handler has stored the file by then.
          const s = stored.get(name);
          if (!s || sha(s) !== sha(p.body)) outcome.corrupt.push(`${name}: stored ${s?.length} of ${p.body.length} bytes`);
        }
        outcome.ok++;
      } catch (e) {
        assert.instance(e, TftpError, `transfer ${name} failed without an ERROR: ${e}`);
        outcome.failed++;
        if (process.env.EMMER_FAULT_DEBUG) console.log(`    ${name} ${p.kind} ${p.blksize}/${p.windowsize} ${p.body.length}: ${(e as Error).message}`);
        const s = stored.get(name);
        if (p.kind === "write" && s && sha(s) !== sha(p.body)) outcome.corrupt.push(`${name}: partial upload stored`);
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    proxy.close();
    await app.close();
  }
  console.log(`    ${outcome.ok} complete, ${outcome.failed} failed with an ERROR, ${outcome.corrupt.length} corrupt; proxy: ${JSON.stringify(proxy.stats)}`);
  assert.equal(outcome.corrupt, [], "corrupt or truncated transfers");
  assert.ok(proxy.stats.dropped > 100 && proxy.stats.duplicated > 50 && proxy.stats.delayed > 50, "the faults were not injected");
  assert.ok(outcome.ok >= TRANSFERS * 0.98, `only ${outcome.ok} of ${TRANSFERS} completed`);
});

// atftp 0.8 aborts ("unexpected OACK") when an OACK reaches it twice, which the server rightly repeats
// when the client's ACK 0 is lost: so the negotiation (OACK, ACK 0) is spared; the data is not.
const negotiation = (d: Uint8Array) => d[1] === 6 || (d[1] === 4 && d[2] === 0 && d[3] === 0);

testNeeding("atftp with windowsize 16 through the same faults (negotiation spared): complete and identical", { atftp: hasPeer("atftp") }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-faults-"));
  // atftp recovers from a lost ACK only on its own timeout: both sides use 1 s (the timeout option),
  // and the server's retries outlast atftp's.
  const body = bytesOf(150_000, 77);
  const app = new Emmer({ port: 0, retries: 12, drainTimeout: 200, onError: () => {} });
  app.read("*", () => body);
  await app.listen();
  const proxy = await startProxy(app.address!.port, { loss: 0.1, duplicate: 0.05, reorder: 0.05, maxDelayMs: 30, seed: SEED + 1, spare: negotiation });
  try {
    for (let i = 0; i < 2; i++) {
      const local = join(dir, `got${i}`);
      const r = await get("atftp", { host: "127.0.0.1", port: proxy.port, remote: "big.bin", local, blksize: 1468, windowsize: 16, timeout: 1, timeoutMs: 90_000 });
      assert.is(r.code, 0, r.stderr);
      assert.is(sha(new Uint8Array(await readFile(local))), sha(body));
    }
  } finally {
    proxy.close();
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
