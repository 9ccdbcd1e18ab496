// serveDir on real files and real sockets: what it serves, what it refuses,
// and what an upload leaves behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlockSource, Emmer, type FillTarget, serveDir, type ServeDirOptions, TftpClient, TftpError } from "../mod.ts";
import { lentOut } from "../adapters/staging_pool.ts";
import { cachedRead, installCachedRead } from "../adapters/cached_read.ts";
import { bytesOf, concat } from "./support/session_driver.ts";
import { rawExchange } from "./support/raw.ts";

/** What lies outside the root, to check that nothing there was created or changed. */
async function outside(top: string): Promise<string> {
  const names = (await readdir(top)).filter((n) => n !== "root").sort();
  const secret = await stat(join(top, "secret.txt"));
  return JSON.stringify({ names, secret: await readFile(join(top, "secret.txt"), "utf8"), mtime: secret.mtimeMs });
}

async function withDir(fn: (ctx: { top: string; root: string; client: TftpClient }) => Promise<void>, options: ServeDirOptions = {}) {
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
  await symlink(top, join(root, "outdir")); // a directory link out of the root
  await writeFile(join(root, "dup.txt"), "lower");
  await writeFile(join(root, "DUP.txt"), "upper");
  await writeFile(join(root, "kelvin.txt"), "k");
  // A FIFO would block a reader forever; a device node could be anything. Both must be refused unopened.
  spawnSync("mkfifo", [join(root, "fifo")]);
  if (spawnSync("mknod", [join(root, "device"), "c", "1", "3"]).status !== 0) await writeFile(join(root, "device"), "");
  const app = new Emmer({ port: 0, drainTimeout: 200, onError: () => {} });
  const dir = serveDir(root, { ...options, write: true });
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

/** Windows-style lookups: backslashes as separators and names found regardless of ASCII case. */
const WINDOWS: ServeDirOptions = { backslash: true, ignoreCase: true };

/** [name, ERROR codes by default, ERROR codes with WINDOWS (if other; -1 means served)] */
const hostile: [string, number[], number[]?][] = [
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
  ["sub\\deep.bin", [2], [-1]], // a path with WINDOWS
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
  ["outdir/secret.txt", [2]],
  // Case and backslash variants of the above: with WINDOWS they reach the same entries, and the same checks.
  ["OUTDIR/secret.txt", [1], [2]],
  ["outdir/SECRET.TXT", [1], [2]],
  ["ESCAPE", [1], [2]],
  ["Loop-A", [1], [1, 2]],
  ["FIFO", [1], [2]],
  ["SUB", [1], [2]],
  ["\\..\\secret.txt", [2]],
  ["sub\\..\\..\\secret.txt", [2]],
  ["SUB\\..\\HELLO.TXT", [2]],
  ["Sub/Deep.bin/..", [2]],
  ["Sub/Deep.bin/x", [1], [1]],
  ["outdir\\secret.txt", [2]],
  ["\\\\server\\share\\secret.txt", [2], [1]], // UNC: root/server/share/...
  ["C:\\secret.txt", [2], [1]], // a drive letter is just a name
  ["C:/..\\secret.txt", [2]],
  ["Dup.txt", [1], [2]], // matches dup.txt and DUP.txt only case-insensitively: ambiguous
  ["\u212Aelvin.txt", [1]], // the Kelvin sign lower-cases to k, but only ASCII case is folded
];


/** What a handler called directly (not through a server) gets besides the name. */
const ctx = { address: "127.0.0.1", port: 1, params: {}, mode: "octet" as const, options: {}, requested: "" };
/** A fill target over separate blocks (a ring's slots, without the ring). */
const into = (blocks: Uint8Array[]): FillTarget => ({ count: blocks.length, view: (i) => blocks[i], offset: () => 0 });

test("names a TFTP request cannot carry are refused too when a handler is called directly (NUL)", async () => {
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  try {
    for (const dir of [serveDir(top), serveDir(top, WINDOWS)]) {
      for (const filename of ["a\0b", "secret\0/../x", "\0", "a\\\0"]) {
        try {
          await dir.read({ ...ctx, filename });
          assert.unreachable(`${JSON.stringify(filename)} was accepted`);
        } catch (e) {
          assert.instance(e, TftpError);
          assert.is((e as TftpError).code, 2);
        }
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
    // close() is called while the fill is under way, twice. The fill goes to the thread pool:
    // a read from the page cache (adapters/cached_read.ts) would be over before fill() returns.
    const cached = cachedRead();
    installCachedRead(null);
    let result: number | Promise<number>;
    try {
      result = src.fill(into(blocks));
    } finally {
      installCachedRead(cached); // for the tests after this one
    }
    assert.instance(result, Promise, "the fill did not go to the thread pool");
    const filling = Promise.resolve(result).then((n) => (order.push("fill"), n));
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

for (const [name, plain, windows] of hostile) {
  const shown = JSON.stringify(name.length > 40 ? name.slice(0, 20) + "..." : name);
  for (const [codes, options, how] of [[plain, {}, ""], [windows ?? plain, WINDOWS, " with backslash and ignoreCase"]] as const) {
    const what = codes[0] === -1 ? "served" : `refused with ERROR ${codes.join(" or ")}`;
    test(`read of ${shown}${how} is ${what}`, () =>
      withDir(async ({ client }) => {
        const code = await errorCode(client.get(name));
        assert.ok(codes.includes(code), `got ${code}`);
      }, options));
  }
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

/** A WDS-style tree as it lies on a Linux disk, in its own spelling. */
async function windowsTree(root: string) {
  await mkdir(join(root, "Boot", "x86"), { recursive: true });
  await mkdir(join(root, "EFI", "Boot"), { recursive: true });
  await writeFile(join(root, "Boot", "x86", "wdsnbp.com"), "wdsnbp");
  await writeFile(join(root, "Boot", "BCD"), "bcd");
  await writeFile(join(root, "EFI", "Boot", "bootx64.efi"), bytesOf(3000, 7));
  await writeFile(join(root, "Case.txt"), "Case");
  await writeFile(join(root, "case.txt"), "case");
}

test("a Windows boot tree is served under the names WDS clients ask, in any case, with backslash and ignoreCase", () =>
  withDir(async ({ root, client }) => {
    await windowsTree(root);
    const t = new TextDecoder();
    for (const name of ["boot\\x86\\wdsnbp.com", "\\Boot\\x86\\WDSNBP.COM", "BOOT/X86/wdsnbp.com", "\\\\boot\\.\\x86\\wdsnbp.com"]) {
      assert.is(t.decode((await client.get(name)).data), "wdsnbp", name);
    }
    assert.is(t.decode((await client.get("\\Boot\\BCD")).data), "bcd");
    assert.is(t.decode((await client.get("\\boot\\bcd")).data), "bcd");
    assert.equal((await client.get("EFI\\BOOT\\BOOTX64.EFI", { tsize: true })).data, bytesOf(3000, 7));
    // An exact match wins over its case variants; a name that is neither is ambiguous.
    assert.is(t.decode((await client.get("case.txt")).data), "case");
    assert.is(t.decode((await client.get("Case.txt")).data), "Case");
    try {
      await client.get("CASE.TXT");
      assert.unreachable("an ambiguous name was served");
    } catch (e) {
      assert.equal([(e as TftpError).code, (e as TftpError).message], [2, "ambiguous file name"]);
    }
  }, WINDOWS));

test("each option alone does only its part; without them Windows names are refused as before", async () => {
  for (const [options, expect] of [
    [{}, { "Boot\\BCD": 2, "BOOT/BCD": 1, "Boot/BCD": -1 }],
    [{ backslash: true }, { "Boot\\BCD": -1, "boot\\bcd": 1, "BOOT/BCD": 1 }],
    [{ ignoreCase: true }, { "Boot\\BCD": 2, "boot/bcd": -1, "BOOT/BCD": -1 }],
  ] as const) {
    await withDir(async ({ root, client }) => {
      await windowsTree(root);
      for (const [name, code] of Object.entries(expect)) assert.is(await errorCode(client.get(name)), code, `${JSON.stringify(options)} ${name}`);
    }, options);
  }
});

test("uploads with ignoreCase replace the file found in another case; new files keep the client's spelling", () =>
  withDir(async ({ root, client }) => {
    await windowsTree(root);
    await client.put("BOOT\\bcd", "new bcd");
    assert.is(await readFile(join(root, "Boot", "BCD"), "utf8"), "new bcd");
    assert.equal((await readdir(join(root, "Boot"))).sort(), ["BCD", "x86"], "a second spelling was created");
    await client.put("boot\\X86\\New.Log", "log");
    assert.is(await readFile(join(root, "Boot", "x86", "New.Log"), "utf8"), "log");
    await client.put("case.txt", "exact");
    assert.is(await readFile(join(root, "case.txt"), "utf8"), "exact");
    assert.is(await readFile(join(root, "Case.txt"), "utf8"), "Case");
    assert.is(await errorCode(client.put("CASE.TXT", "x")), 2); // ambiguous
    assert.is(await errorCode(client.put("nodir\\x", "x")), 1);
    assert.is(await errorCode(client.put("OUTDIR\\secret.txt", "x")), 2);
    assert.is(await errorCode(client.put("..\\secret.txt", "x")), 2);
    assert.is(await errorCode(client.put("ESCAPE", "x")), 2); // the symlink, found case-insensitively, is not replaced
    assert.is(await errorCode(client.put("Inside-Link", "x")), 2);
    assert.is(await errorCode(client.put("SUB", "x")), 2);
    const names = [...(await readdir(root)), ...(await readdir(join(root, "Boot")))].filter((n) => n.includes("emmer-upload"));
    assert.equal(names, [], "temporary files left behind");
  }, WINDOWS));

test("rewrite rules and serveDir: a rule that produces a hostile name is still refused", async () => {
  const { parseMapFile } = await import("../mod.ts");
  const top = await mkdtemp(join(tmpdir(), "emmer-dir-"));
  try {
    const root = join(top, "root");
    await mkdir(root);
    await writeFile(join(top, "secret.txt"), "outside");
    await writeFile(join(root, "ok.txt"), "ok");
    // Every name is turned into ../NAME, the worst a careless rule can do.
    const app = new Emmer({ port: 0, onError: () => {}, rewrite: parseMapFile("r ^(.*)$ ../\\1") });
    app.read("*", serveDir(root, WINDOWS).read);
    await app.listen();
    try {
      const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 300, retries: 2 });
      assert.is(await errorCode(client.get("secret.txt")), 2);
      assert.is(await errorCode(client.get("ok.txt")), 2);
    } finally {
      await app.close();
    }
  } finally {
    await rm(top, { recursive: true, force: true });
  }
});

test.run();
