// serveDir on real files and real sockets: what it serves, what it refuses,
// and what an upload leaves behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlockSource, Emmer, type FillTarget, serveDir, TftpClient, TftpError } from "../mod.ts";
import { lentOut } from "../adapters/staging_pool.ts";
import { bytesOf, concat } from "./support/session_driver.ts";
import { rawExchange } from "./support/raw.ts";

/** What lies outside the root, to check that nothing there was created or changed. */
async function outside(top: string): Promise<string> {
  const names = (await readdir(top)).filter((n) => n !== "root").sort();
  const secret = await stat(join(top, "secret.txt"));
  return JSON.stringify({ names, secret: await readFile(join(top, "secret.txt"), "utf8"), mtime: secret.mtimeMs });
}

async function withDir(fn: (ctx: { top: string; root: string; client: TftpClient }) => Promise<void>) {
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  const root = join(top, "root");
  await mkdir(join(root, "sub"), { recursive: true });
  await writeFile(join(top, "secret.txt"), "outside the root");
  await writeFile(join(root, "hello.txt"), "hello\n");
  await writeFile(join(root, "sub", "deep.bin"), bytesOf(70_000));
  await symlink(join(top, "secret.txt"), join(root, "escape"));
  await symlink(join(root, "hello.txt"), join(root, "inside-link"));
  await symlink("loop-b", join(root, "loop-a"));
  await symlink("loop-a", join(root, "loop-b"));
  // A FIFO would block a reader forever; a device node could be anything. Both must be refused unopened.
  spawnSync("mkfifo", [join(root, "fifo")]);
  if (spawnSync("mknod", [join(root, "device"), "c", "1", "3"]).status !== 0) await writeFile(join(root, "device"), "");
  const app = new Emmer({ port: 0, drainTimeout: 200, onError: () => {} });
  const dir = serveDir(root, { write: true });
  app.read("*", dir.read);
  app.write("*", dir.write!);
  await app.listen();
  try {
    const before = await outside(top);
    await fn({ top, root, client: new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 300, retries: 2 }) });
    assert.is(await outside(top), before, "something outside the root changed");
  } finally {
    await app.close();
    await rm(top, { recursive: true, force: true });
  }
}

async function errorCode(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TftpError) return e.code;
    throw e;
  }
  return -1;
}

test("serves files, subfolders, leading slashes and links that stay inside", () =>
  withDir(async ({ client }) => {
    const t = new TextDecoder();
    assert.is(t.decode((await client.get("hello.txt")).data), "hello\n");
    assert.is(t.decode((await client.get("/hello.txt")).data), "hello\n");
    assert.is(t.decode((await client.get("inside-link")).data), "hello\n");
    const deep = await client.get("sub/deep.bin", { tsize: true, blksize: 1468 });
    assert.equal(deep.data, bytesOf(70_000));
    assert.is(deep.oack?.tsize, "70000");
  }));

const hostile: [string, number[]][] = [
  ["../secret.txt", [2]],
  ["./../secret.txt", [2]],
  ["sub/..", [2]],
  ["sub/deep.bin/..", [2]],
  ["sub/./../../secret.txt", [2]],
  ["/etc/passwd", [1]], // a leading / is the root: root/etc/passwd does not exist
  ["//etc//passwd", [1]],
  ["..%2fsecret.txt", [1]],
  ["\uff0e\uff0e/secret.txt", [1]], // fullwidth full stops
  ["\u002e\u0301\u002e/secret.txt", [1]], // combining accent between the dots
  ["fifo", [2]],
  ["device", [2]],
  ["sub/../../secret.txt", [2]],
  ["sub/../hello.txt", [2]],
  ["..", [2]],
  ["..\\secret.txt", [2]],
  ["sub\\deep.bin", [2]],
  ["/../secret.txt", [2]],
  ["escape", [2]],
  ["loop-a", [1, 2]],
  ["sub", [2]],
  ["/", [2]],
  ["missing.txt", [1]],
  ["x".repeat(2000), [2]],
  ["x".repeat(4096), [4]], // the request itself is too long
  ["%2e%2e/secret.txt", [1]],
  ["\u2024\u2024/secret.txt", [1]],
];

/** What a handler called directly (not through a server) gets besides the name. */
const ctx = { address: "127.0.0.1", port: 1, params: {}, mode: "octet" as const, options: {} };
/** A fill target over separate blocks (a ring's slots, without the ring). */
const into = (blocks: Uint8Array[]): FillTarget => ({ count: blocks.length, view: (i) => blocks[i], offset: () => 0 });

test("names a TFTP request cannot carry are refused too when a handler is called directly (NUL)", async () => {
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  try {
    const dir = serveDir(top);
    for (const filename of ["a\0b", "secret\0/../x"]) {
      try {
        await dir.read({ ...ctx, filename });
        assert.unreachable(`${JSON.stringify(filename)} was accepted`);
      } catch (e) {
        assert.instance(e, TftpError);
        assert.is((e as TftpError).code, 2);
      }
    }
  } finally {
    await rm(top, { recursive: true, force: true });
  }
});

test("two files read at once each get their own bytes, and no staging stays lent between fills", async () => {
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  try {
    const one = bytesOf(9_000, 1);
    const two = bytesOf(9_000, 2);
    await writeFile(join(top, "one.bin"), one);
    await writeFile(join(top, "two.bin"), two);
    const dir = serveDir(top);
    const a = (await dir.read({ ...ctx, filename: "one.bin" })) as BlockSource;
    const b = (await dir.read({ ...ctx, filename: "two.bin" })) as BlockSource;
    // Windows of 4 blocks of 1,000 bytes, filled side by side. Only Deno stages these reads (its
    // readv is broken): on Node and Bun the pool stays untouched and lentOut() is 0 regardless.
    const got: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];
    for (;;) {
      const wa = Array.from({ length: 4 }, () => new Uint8Array(1000));
      const wb = Array.from({ length: 4 }, () => new Uint8Array(1000));
      const [na, nb] = await Promise.all([a.fill(into(wa)), b.fill(into(wb))]);
      assert.is(lentOut(), 0, "a staging buffer stayed lent after its fill");
      got[0] = concat([got[0], concat(wa).subarray(0, na)]);
      got[1] = concat([got[1], concat(wb).subarray(0, nb)]);
      if (na < 4000 && nb < 4000) break;
    }
    assert.equal(got[0], one);
    assert.equal(got[1], two);
    await a.close();
    await b.close();
  } finally {
    await rm(top, { recursive: true, force: true });
  }
});

test("a file's descriptor is closed once, and only after the fill under way", async () => {
  // Which descriptors hold a file: /proc/self/fd, which Linux has (CI runs there).
  const linux = existsSync("/proc/self/fd");
  const holding = (path: string) =>
    readdirSync("/proc/self/fd").map(Number).filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false; // the listing's own descriptor, gone by now
      }
    });
  const top = await realpath(await mkdtemp(join(tmpdir(), "emmer-dir-")));
  const file = join(top, "f.bin");
  const otherFile = join(top, "other.bin");
  try {
    // More views than one readv takes (IOV_MAX is 1024): the fill needs several reads,
    // and a close that does not wait for it lands between them.
    const views = 3 * 1024;
    const body = bytesOf(views * 64, 4);
    await writeFile(file, body);
    await writeFile(otherFile, "other");
    const dir = serveDir(top);
    const src = (await dir.read({ ...ctx, filename: "f.bin" })) as BlockSource;
    const opened = linux ? holding(file) : [];
    if (linux) assert.is(opened.length, 1, `descriptors on the file: ${opened}`);
    const blocks = Array.from({ length: views }, () => new Uint8Array(64));
    const order: string[] = [];
    // close() is called while the fill is under way, twice.
    const filling = Promise.resolve(src.fill(into(blocks))).then((n) => (order.push("fill"), n));
    const closing = [src.close(), src.close()].map((p) => Promise.resolve(p).then(() => order.push("close")));
    assert.is(await filling, body.length, "the fill under way completes");
    await Promise.all(closing);
    assert.equal(order, ["fill", "close", "close"]);
    assert.equal(concat(blocks), body);
    if (linux) {
      assert.equal(holding(file), [], "the descriptor is still open");
      // Its number is free again. Opens take the lowest free number: open until one
      // gets it; a third close() must leave that file alone.
      const held: number[] = [];
      try {
        while (held.length < 256 && held[held.length - 1] !== opened[0]) held.push(openSync(otherFile, "r"));
        assert.is(held[held.length - 1], opened[0], "no open reused the number (the check below would prove nothing)");
        await src.close();
        assert.equal(holding(otherFile).sort(), [...held].sort(), "a later close() closed another file's descriptor");
      } finally {
        held.forEach((fd) => closeSync(fd));
      }
    }
    try {
      await src.fill(into([new Uint8Array(64)]));
      assert.unreachable("a closed file filled");
    } catch (error) {
      assert.match(String(error), /closed/);
    }
  } finally {
    await rm(top, { recursive: true, force: true });
  }
});

test("an upload whose signal is aborted before it is committed leaves neither the file nor a temporary file", async () => {
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  try {
    const dir = serveDir(top, { write: true });
    const abort = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        // The whole upload arrives; the client is told it failed before the handler commits it.
        c.enqueue(bytesOf(10_000));
        abort.abort(new TftpError(0, "handler timed out"));
        c.close();
      },
    });
    try {
      await dir.write!.handle({ ...ctx, filename: "late.bin", body, signal: abort.signal });
      assert.unreachable("the handler committed an upload its client was told had failed");
    } catch (e) {
      assert.instance(e, TftpError);
    }
    assert.equal(await readdir(top), []);
  } finally {
    await rm(top, { recursive: true, force: true });
  }
});

for (const [name, codes] of hostile) {
  test(`read of ${JSON.stringify(name.length > 40 ? name.slice(0, 20) + "..." : name)} is refused with ERROR ${codes.join(" or ")}`, () =>
    withDir(async ({ client }) => {
      const code = await errorCode(client.get(name));
      assert.ok(codes.includes(code), `got ${code}`);
    }));
}

test("uploads land whole via a temporary name; refused names change nothing outside the root", () =>
  withDir(async ({ top, root, client }) => {
    await client.put("new.bin", bytesOf(100_000, 3), { blksize: 1468 });
    assert.equal(new Uint8Array(await readFile(join(root, "new.bin"))), bytesOf(100_000, 3));
    await client.put("hello.txt", "replaced\n");
    assert.is(await readFile(join(root, "hello.txt"), "utf8"), "replaced\n");
    assert.is(await errorCode(client.put("../secret.txt", "x")), 2);
    assert.is(await errorCode(client.put("sub/../../new.txt", "x")), 2);
    assert.is(await errorCode(client.put("loop-a", "x")), 2);
    assert.is(await errorCode(client.put("fifo", "x")), 2);
    assert.is(await errorCode(client.put("inside-link", "x")), 2); // a symlink, even one inside, is not replaced
    assert.is(await errorCode(client.put("escape", "x")), 2);
    assert.is(await errorCode(client.put("sub", "x")), 2);
    assert.is(await errorCode(client.put("nodir/file", "x")), 1);
    // A long name that fits the file system is stored (its temporary name is shorter); one that does not is refused as such.
    await client.put("L".repeat(220), "long\n");
    assert.is(await readFile(join(root, "L".repeat(220)), "utf8"), "long\n");
    try {
      await client.put("L".repeat(300), "x");
      assert.unreachable("a 300-byte name was accepted");
    } catch (e) {
      assert.equal([(e as TftpError).code, (e as TftpError).message], [2, "file name too long"]);
    }
    assert.is(await readFile(join(top, "secret.txt"), "utf8"), "outside the root");
    // Not readdir's `recursive`: Bun's follows the symlink loop in the root.
    const names = [...(await readdir(root)), ...(await readdir(join(root, "sub")))].filter((n) => n.includes("emmer-upload"));
    assert.equal(names, [], "temporary files left behind");
  }));

test("names that are not UTF-8 are refused, and a leading BOM stays part of the name: two names never map to one file", () =>
  withDir(async ({ root, client }) => {
    const port = client.port;
    const enc = new TextEncoder();
    for (const op of [2, 1]) {
      for (const byte of [0xe9, 0xe8]) {
        const request = [0, op, ...enc.encode("name"), byte, ...enc.encode("\0octet\0")];
        const answer = await rawExchange(port, request);
        assert.equal([answer.data[1], answer.data[3]], [5, 2], `op ${op}, byte ${byte.toString(16)}`);
        assert.is(new TextDecoder().decode(answer.data.subarray(4, -1)), "illegal file name");
      }
    }
    assert.equal((await readdir(root)).filter((n) => n.startsWith("name")), [], "an upload was stored");
    // A leading byte-order mark is part of the name, not dropped: "\uFEFFhello.txt" is not hello.txt.
    const bom = [0, 1, 0xef, 0xbb, 0xbf, ...enc.encode("hello.txt\0octet\0")];
    const answer = await rawExchange(port, bom);
    assert.equal([answer.data[1], answer.data[3]], [5, 1], "a BOM-prefixed name reached hello.txt");
  }));

test("an upload abandoned midway leaves neither the file nor a temporary file", () =>
  withDir(async ({ root }) => {
    const app = new Emmer({ port: 0, timeout: 1, retries: 0, drainTimeout: 100, onError: () => {} });
    const dir = serveDir(root, { write: true });
    let handlerDone!: () => void;
    const settled = new Promise<void>((r) => (handlerDone = r));
    app.write("*", {
      accept: dir.write!.accept,
      handle: async (ctx) => {
        try {
          await dir.write!.handle(ctx);
        } finally {
          handlerDone();
        }
      },
    });
    await app.listen();
    try {
        const wrq = [0, 2, ...new TextEncoder().encode("partial.bin\0octet\0")];
      const first = await rawExchange(app.address!.port, wrq);
      assert.equal([first.data[1], first.data[3]], [4, 0], "ACK 0");
      let tempSeen = false;
      for (let i = 0; i < 100 && !tempSeen; i++) {
        tempSeen = (await readdir(root)).some((n) => n.includes("emmer-upload"));
        if (!tempSeen) await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(tempSeen, "the upload never reached a temporary file");
      // The client vanishes. The server gives up after its one timeout; the handler cleans up.
      await settled;
      const names = await readdir(root);
      assert.not.ok(names.includes("partial.bin"));
      assert.equal(names.filter((n) => n.includes("emmer-upload")), []);
    } finally {
      await app.close();
    }
  }));

test.run();
