// serveDir's reads from the page cache (adapters/cached_read.ts): a fill takes what a read
// that never waits gives, on the spot, and the thread pool reads the rest from the right place.
// First against scripted reads (all, short, none, refused), then against the real one
// (preadv2 with RWF_NOWAIT, adapters/native/nowait_read.ts) on hot and cold files, then in a
// real download whose metrics count the reads. Fills go into a ring in WebAssembly memory,
// as a transfer's do, and the memory grows between fills.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type BlockSource, Emmer, type FillTarget, serveDir, TftpClient } from "../mod.ts";
import { type CachedRead, cachedRead, cachedReadStats, installCachedRead } from "../adapters/cached_read.ts";
import { loadNative } from "../adapters/native/detect.ts";
import { nowaitRead } from "../adapters/native/nowait_read.ts";
import { runtimeName } from "../adapters/runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

const { native, detection } = await loadNative();
/** The read this process installed (null without an FFI, with EMMER_NATIVE=off, or where the kernel refuses it). */
const real = cachedRead();
const ctx = { address: "127.0.0.1", port: 1, params: {}, mode: "octet" as const, options: {}, requested: "" };
const GARBAGE = 0xee;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/**
 * A transfer's ring: `slots` slots of a 4-byte header and `blksize` bytes in WebAssembly memory,
 * filled in turn and wrapping round as core/session.ts fills them. Views are made from the memory's
 * buffer of the moment, so a grow between fills gives new ones.
 */
function ring(memory: WebAssembly.Memory, blksize: number, slots: number) {
  const base = 64; // not at 0: a pointer of 0 would pass for a null one
  const stride = blksize + 4;
  let next = 0;
  const at = (slot: number) => base + (slot % slots) * stride + 4;
  return {
    target(count: number): FillTarget {
      const first = next;
      return { count, view: (i) => new Uint8Array(memory.buffer, at(first + i), blksize), offset: (i) => at(first + i) };
    },
    /** Every payload byte set to GARBAGE: a byte that a fill did not write shows. */
    soil() {
      for (let s = 0; s < slots; s++) new Uint8Array(memory.buffer, at(s), blksize).fill(GARBAGE);
    },
    /** The first `n` bytes of the last target's `count` blocks, laid end to end, copied. */
    take(count: number, n: number): Uint8Array {
      const out = new Uint8Array(n);
      for (let i = 0, done = 0; done < n; i++) {
        const part = Math.min(blksize, n - done);
        out.set(new Uint8Array(memory.buffer, at(next + i), part), done);
        done += part;
      }
      next = (next + count) % slots;
      return out;
    },
  };
}

interface Drained {
  bytes: Uint8Array;
  /** Fills answered with a number (no promise): read from the cache alone, or at the end. */
  sync: number;
  fills: number;
}

/**
 * Reads `src` to its end, fill after fill of `counts[k]` blocks in turn, into a ring of `slots`
 * slots; the memory grows by a page after every `growEvery`th fill.
 */
async function drain(src: BlockSource, blksize: number, counts: number[], growEvery = 3): Promise<Drained> {
  const slots = Math.max(...counts) * 2;
  const memory = new WebAssembly.Memory({ initial: Math.ceil((64 + slots * (blksize + 4)) / 65536) + 1, maximum: 4096 });
  const r = ring(memory, blksize, slots);
  const parts: Uint8Array[] = [];
  let sync = 0, fills = 0, served = 0;
  for (let k = 0; ; k++) {
    const count = counts[k % counts.length];
    r.soil();
    const result = src.fill(r.target(count));
    fills++;
    if (typeof result === "number") sync++;
    const n = typeof result === "number" ? result : await result;
    parts.push(r.take(count, n));
    served += n;
    if (served > (src.size ?? Infinity)) assert.unreachable(`${served} bytes served of a ${src.size}-byte file`);
    if (n < count * blksize) break;
    if (k % growEvery === growEvery - 1) memory.grow(1);
  }
  const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
  return { bytes, sync, fills };
}

/** The file's bytes from `position` into `views`, as node:fs reads them. */
function readInto(fd: number, views: readonly Uint8Array[], position: number, limit = Infinity): number {
  let total = 0;
  for (const v of views) {
    const room = Math.min(v.length, limit - total);
    if (room <= 0) break;
    const n = readSync(fd, v, 0, room, position + total);
    total += n;
    if (n < v.length) break;
  }
  return total;
}

/** Bytes after those a read reports: scribbled on, as a read that stopped midway leaves them undefined. */
function scribble(views: readonly Uint8Array[], from: number): void {
  for (const v of views) {
    if (from < v.length) v.fill(0x5a, Math.max(0, from));
    from -= v.length;
  }
}

interface Script {
  name: string;
  /** What the read returns, given the bytes asked for and the call's number for this file. */
  answer(asked: number, call: number): "all" | "none" | "refuse" | number;
  /** Every fill with bytes to read is answered at once. */
  allSync?: boolean;
}

const SCRIPTS: Script[] = [
  { name: "everything cached", answer: () => "all", allSync: true },
  { name: "nothing cached (EAGAIN)", answer: () => "none" },
  // Short reads that stop inside a block, at a block's end, one byte in, one byte short.
  { name: "short reads", answer: (asked, call) => [1, 700, 1468, 512, asked - 1, 3 * 1468 + 5, 0][call % 7] },
  { name: "refused for this file system (EOPNOTSUPP)", answer: () => "refuse" },
  { name: "cached, short and EAGAIN in turn", answer: (_asked, call) => (["all", 1000, "none", "all", 1][call % 5] as "all" | "none" | number) },
];

const SIZES = [0, 1, 511, 512, 513, 1467, 1468, 1469, 512 * 45, 1468 * 45 + 1, 100_007];
/** Blocks per fill in turn: lock-step (2), windows (a first window, then half a ring), one fill of 45. */
const COUNTS = [[2], [16, 32], [45], [1, 3, 64]];

function scripted(script: Script, positions: number[], size: number) {
  const calls = { n: 0 };
  const read: CachedRead = (fd, views, position) => {
    positions.push(position);
    const asked = views.reduce((s, v) => s + v.length, 0);
    assert.ok(views.length > 0 && views.every((v) => v.length > 0), "empty views asked for");
    const a = script.answer(asked, calls.n++);
    if (a === "refuse") return -1;
    const limit = a === "all" ? asked : a === "none" ? 0 : Math.max(0, Math.min(asked, a));
    const n = readInto(fd, views, position, limit);
    assert.ok(n <= size - position, "read past the end");
    scribble(views, n);
    return n;
  };
  return { read, calls };
}

for (const script of SCRIPTS) {
  test(`scripted cached reads, ${script.name}: the file's exact bytes at every size, blksize and window`, async () => {
    const top = mkdtempSync(join(tmpdir(), "emmer-cached-"));
    try {
      const dir = serveDir(top);
      for (const size of SIZES) {
        const body = bytesOf(size, size + 3);
        writeFileSync(join(top, "f.bin"), body);
        for (const blksize of [512, 1468]) {
          for (const counts of COUNTS) {
            const label = `${size} bytes, blksize ${blksize}, fills of ${counts}`;
            const positions: number[] = [];
            const { read, calls } = scripted(script, positions, size);
            installCachedRead(read);
            const before = { ...cachedReadStats };
            const src = (await dir.read({ ...ctx, filename: "f.bin" })) as BlockSource;
            let got: Drained;
            try {
              got = await drain(src, blksize, counts);
            } finally {
              await src.close();
              installCachedRead(real);
            }
            assert.is(got.bytes.length, size, label);
            assert.is(sha(got.bytes), sha(body), label);
            assert.ok(Buffer.compare(got.bytes, body) === 0, label);
            // Each read starts where the bytes served so far end: where the previous fill ended.
            let at = 0;
            const starts = new Set<number>();
            for (let k = 0; at < size; k++) {
              starts.add(at);
              at = Math.min(size, at + counts[k % counts.length] * blksize);
            }
            if (script.name.startsWith("refused")) {
              assert.is(calls.n, size > 0 ? 1 : 0, `${label}: asked again after the refusal`);
            } else {
              assert.equal(positions, [...starts], `${label}: read positions`);
            }
            if (script.allSync) assert.is(got.sync, got.fills, `${label}: a fill answered from the cache was a promise`);
            // Else only the fill at the end of the file, which has nothing to read, is a number.
            else if (script.name.startsWith("nothing")) assert.is(got.sync, got.fills - positions.length, `${label}: fills answered at once`);
            const reads = cachedReadStats.reads - before.reads, bytes = cachedReadStats.bytes - before.bytes;
            const fallbacks = cachedReadStats.fallbacks - before.fallbacks;
            if (script.allSync) assert.equal([reads, bytes, fallbacks], [positions.length, size, 0], `${label}: counts`);
            if (script.name.startsWith("nothing")) assert.equal([reads, bytes, fallbacks], [0, 0, positions.length], `${label}: counts`);
            if (script.name.startsWith("refused")) assert.equal([reads, bytes, fallbacks], [0, 0, size > 0 ? 1 : 0], `${label}: counts`);
          }
        }
      }
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
}

test("a fill that the cache answers whole is a number, one it does not a promise, and the end of the file is 0 at once", async () => {
  const top = mkdtempSync(join(tmpdir(), "emmer-cached-"));
  try {
    writeFileSync(join(top, "f.bin"), bytesOf(3000));
    const dir = serveDir(top);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const r = ring(memory, 1000, 8);
    let answer: "all" | "none" = "all";
    installCachedRead((fd, views, position) => (answer === "all" ? readInto(fd, views, position) : 0));
    const src = (await dir.read({ ...ctx, filename: "f.bin" })) as BlockSource;
    try {
      assert.is(src.fill(r.target(2)), 2000);
      answer = "none";
      const rest = src.fill(r.target(2));
      assert.instance(rest, Promise);
      assert.is(await rest, 1000);
      assert.is(src.fill(r.target(2)), 0);
    } finally {
      installCachedRead(real);
      await src.close();
    }
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

// ---- the real read: preadv2 with RWF_NOWAIT ----

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
/**
 * A folder on a file system that reads without waiting (tmpfs, for one, refuses RWF_NOWAIT
 * on this kernel): the system's temporary folder, or else one inside the repository.
 */
function nowaitDir(): string | null {
  if (native === null || real === null) return null;
  const read = nowaitRead(native)!;
  for (const parent of [tmpdir(), repo]) {
    const dir = mkdtempSync(join(parent, ".emmer-cached-"));
    writeFileSync(join(dir, "probe"), "probe");
    const fd = openSync(join(dir, "probe"), "r");
    const n = read(fd, [new Uint8Array(5)], 0);
    closeSync(fd);
    if (n === 5) return dir;
    rmSync(dir, { recursive: true, force: true });
  }
  return null;
}

const linux = process.platform === "linux";
const hot = nowaitDir();
/** The cases below need the real read: required of Node on CI, where koffi and a disk are. */
function needReal(): boolean {
  if (hot !== null) return true;
  const expected = runtimeName() === "node" && linux && process.env.CI === "true" && process.env.EMMER_NATIVE !== "off";
  if (expected) assert.unreachable(`CI's Node must read from the page cache: ${detection.cachedRead.why}; hot folder ${hot}`);
  return false;
}

test("the probe says whether the read is there, and EMMER_NATIVE=off leaves it out", () => {
  if (process.env.EMMER_NATIVE === "off") {
    assert.is(real, null, "installed despite EMMER_NATIVE=off");
    assert.is(detection.cachedRead.ok, false);
    assert.match(detection.cachedRead.why, /EMMER_NATIVE=off/);
    return;
  }
  assert.is(real !== null, detection.cachedRead.ok, detection.cachedRead.why);
  if (native !== null && detection.cachedRead.ok) assert.match(detection.cachedRead.why, /preadv2 with RWF_NOWAIT/);
});

test("the real read on a hot file: every fill at once, the exact bytes, across memory grows and past IOV_MAX views", async () => {
  if (!needReal()) return;
  const dir = serveDir(hot!);
  try {
    for (const size of [0, 1, 1468 * 45, 1468 * 45 + 1, 2 * 1024 * 1024 + 3]) {
      const body = bytesOf(size, 9);
      writeFileSync(join(hot!, "f.bin"), body);
      // [blksize, fills]: lock-step, windows, and fills of 1,500 blocks (more iovecs than one call takes)
      for (const [blksize, counts] of [[512, [2]], [1468, [16, 32]], [512, [1500]], [1468, [1, 45]]] as [number, number[]][]) {
        const label = `${size} bytes, blksize ${blksize}, fills of ${counts}`;
        const before = { ...cachedReadStats };
        const src = (await dir.read({ ...ctx, filename: "f.bin" })) as BlockSource;
        const got = await drain(src, blksize, counts, 1).finally(() => src.close());
        assert.ok(Buffer.compare(got.bytes, body) === 0, `${label}: ${sha(got.bytes)} served, ${sha(body)} on disk`);
        assert.is(got.sync, got.fills, `${label}: ${got.fills - got.sync} fills went to the pool`);
        assert.is(cachedReadStats.bytes - before.bytes, size, label);
        assert.is(cachedReadStats.fallbacks - before.fallbacks, 0, label);
      }
    }
  } finally {
    rmSync(hot!, { recursive: true, force: true });
  }
});

/**
 * Drops `file`'s pages from the page cache (GNU dd's nocache, written back first). False where dd
 * cannot (a test then has nothing to check), which CI does not accept.
 */
function dropCache(file: string): boolean {
  const dd = (...args: string[]) => spawnSync("dd", [...args, "count=0", "status=none"], { timeout: 20_000 }).status;
  if (dd(`of=${file}`, "oflag=nocache", "conv=notrunc,fdatasync") === 0 && dd(`if=${file}`, "iflag=nocache") === 0) return true;
  if (process.env.CI === "true") assert.unreachable("dd cannot drop a file's pages here");
  return false;
}

test("the real read on a cold file: what the cache lacks comes from the pool, the bytes exact", async () => {
  if (!needReal()) return;
  const top = nowaitDir()!;
  const file = join(top, "cold.bin");
  try {
    const body = bytesOf(4 * 1024 * 1024 + 11, 5);
    writeFileSync(file, body);
    if (!dropCache(file)) return;
    // Pages not cached: EAGAIN, which the read reports as 0 bytes (not as a refusal). Asked near the
    // end, so that the read-ahead it may start leaves the start of the file cold.
    const fd = openSync(file, "r");
    try {
      assert.is(nowaitRead(native!)!(fd, [new Uint8Array(1468)], body.length - 100_000), 0);
    } finally {
      closeSync(fd);
    }
    const before = { ...cachedReadStats };
    const src = (await serveDir(top).read({ ...ctx, filename: "cold.bin" })) as BlockSource;
    const got = await drain(src, 1468, [16, 32], 2).finally(() => src.close());
    assert.ok(Buffer.compare(got.bytes, body) === 0, `${sha(got.bytes)} served, ${sha(body)} on disk`);
    assert.ok(cachedReadStats.fallbacks - before.fallbacks >= 1, "no fill went to the pool: the pages were not dropped, or the read waited for the disk");
    assert.ok(got.sync < got.fills, "every fill was answered at once from a cold file");
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test("the real read on a file cached only in part: it stops where the cache does, past IOV_MAX views too", () => {
  if (!needReal()) return;
  const top = nowaitDir()!;
  const file = join(top, "part.bin");
  try {
    const body = bytesOf(8 * 1024 * 1024, 6);
    writeFileSync(file, body);
    if (!dropCache(file)) return;
    const fd = openSync(file, "r");
    try {
      // The first 100 KB read back into the cache (with whatever read-ahead the kernel adds).
      readSync(fd, new Uint8Array(100_000), 0, 100_000, 0);
      // 1,500 views of 4 KiB: more than one call takes (the first asks for 4 MiB, more than the
      // read-ahead brought in), and a short call must end the read.
      const SIZE = 4096;
      const views = Array.from({ length: 1500 }, () => new Uint8Array(SIZE).fill(GARBAGE));
      const n = nowaitRead(native!)!(fd, views, 0);
      assert.ok(n >= 100_000 && n < 1024 * SIZE, `${n} bytes read`);
      const got = new Uint8Array(views.length * SIZE);
      views.forEach((v, i) => got.set(v, i * SIZE));
      assert.ok(Buffer.compare(got.subarray(0, n), body.subarray(0, n)) === 0, "the bytes read are not the file's");
      assert.ok(got.subarray(Math.ceil(n / SIZE) * SIZE).every((b) => b === GARBAGE), "views past the short read were written");
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test("the real read where the file system refuses RWF_NOWAIT: -1 (ask no more), and serveDir serves such files from the pool", async () => {
  if (native === null || real === null) return;
  const read = nowaitRead(native)!;
  // procfs refuses it (EOPNOTSUPP), as tmpfs does on some kernels.
  const fd = openSync("/proc/self/status", "r");
  try {
    assert.is(read(fd, [new Uint8Array(64)], 0), -1);
  } finally {
    closeSync(fd);
  }
  if (!existsSync("/dev/shm")) return;
  const top = mkdtempSync(join("/dev/shm", "emmer-cached-"));
  try {
    const body = bytesOf(200_003, 2);
    writeFileSync(join(top, "f.bin"), body);
    const probe = openSync(join(top, "f.bin"), "r");
    const refused = read(probe, [new Uint8Array(64)], 0) === -1;
    closeSync(probe);
    const before = { ...cachedReadStats };
    const src = (await serveDir(top).read({ ...ctx, filename: "f.bin" })) as BlockSource;
    const got = await drain(src, 1468, [16, 32]).finally(() => src.close());
    assert.ok(Buffer.compare(got.bytes, body) === 0);
    // Where this tmpfs refuses it: tried once, then every fill from the pool.
    if (refused) assert.equal([cachedReadStats.reads - before.reads, cachedReadStats.fallbacks - before.fallbacks, got.sync], [0, 1, 0]);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

// ---- a real download ----

test("a download from serveDir: the metrics count the reads the cache answered (none with EMMER_NATIVE=off)", async () => {
  const top = hot === null ? mkdtempSync(join(tmpdir(), "emmer-cached-")) : nowaitDir()!;
  const body = bytesOf(1_000_003, 4);
  writeFileSync(join(top, "boot.img"), body);
  const app = new Emmer({ hostname: "127.0.0.1", port: 0, metrics: true, singlePort: true });
  app.read("*", serveDir(top).read);
  await app.listen();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(app.metrics!.render())?.[1]);
  try {
    const reads = metric("emmer_cached_reads_total"), bytes = metric("emmer_cached_read_bytes_total");
    const fallbacks = metric("emmer_cached_read_fallbacks_total");
    const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 2000 });
    const runs = [{ blksize: 1468, windowsize: 16 }, { blksize: 512 }];
    for (const options of runs) {
      const { data } = await client.get("boot.img", options);
      assert.ok(Buffer.compare(data, body) === 0, `${JSON.stringify(options)}: bytes differ`);
    }
    const counted = [metric("emmer_cached_reads_total") - reads, metric("emmer_cached_read_bytes_total") - bytes, metric("emmer_cached_read_fallbacks_total") - fallbacks];
    if (cachedRead() === null) {
      assert.equal(counted, [0, 0, 0], "reads counted with no cached read installed");
      if (process.env.EMMER_NATIVE === "off") assert.is(real, null);
    } else if (hot !== null) {
      // A file just written is in the page cache: every byte of both downloads came from it.
      assert.ok(counted[0] > 2, `${counted[0]} cached reads`);
      assert.is(counted[1], runs.length * body.length);
      assert.is(counted[2], 0);
    }
    needReal();
  } finally {
    await app.close();
    rmSync(top, { recursive: true, force: true });
  }
});

// Deno with a read permission scoped to other paths, on a terminal: probing the read must not stop at
// a permission prompt (the server would hang at startup). `script` gives the child a terminal.
test("Deno with --allow-read scoped elsewhere, on a terminal: startup asks nothing and goes on", async () => {
  if (runtimeName() !== "deno" || process.env.EMMER_NATIVE === "off") return;
  const probe = join(mkdtempSync(join(tmpdir(), "emmer-perm-")), "probe.ts");
  try {
    writeFileSync(probe, `import { loadNative } from ${JSON.stringify(join(repo, "adapters", "native", "detect.ts"))};\n` +
      `const { detection } = await loadNative();\nconsole.log("cachedRead " + JSON.stringify(detection.cachedRead));\n`);
    // Reads granted in the probe's folder only: not /proc/self/exe, nor Deno's binary.
    const deno = `${process.execPath} run --allow-ffi --allow-env --allow-read=${dirname(probe)} ${probe}`;
    // Its stdin stays open, as a terminal's does: a prompt would wait for an answer.
    const child = spawn("script", ["-qec", deno, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
    clearTimeout(timer);
    child.stdin.end();
    assert.is(signal, null, `stopped at a prompt: ${out}`);
    assert.not.match(out, /Deno requests/);
    assert.is(code, 0, out);
    assert.match(out, /cachedRead \{"ok":/);
  } finally {
    rmSync(dirname(probe), { recursive: true, force: true });
  }
});

test.run();
