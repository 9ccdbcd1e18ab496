// `emmer-node get|put` as users run it: the bundled dist/emmer-node.js on Node,
// `deno run -A serve.ts` and `bun run serve.ts`, each spawned from here (so this file
// runs on Node only), against Emmer (in this process), tftpd-hpa and atftpd (started
// here on 127.0.0.1 and a free high port). Every file is sha256-checked. The progress
// line is checked in a real pseudo-terminal (script(1)) and checked absent on a pipe.
// A missing peer server skips its tests locally and fails them in CI (CI=true).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Emmer, serveDir, type TransferEvent } from "../mod.ts";
import { bytesOf } from "./support/session_driver.ts";

const CI = process.env.CI === "true";
const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const nodeBin = (name: string) => join(repo, "node_modules", ".bin", name);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Each runtime's command line for emmer-node. */
const RUNTIMES: Record<string, string[]> = {
  node: [process.execPath, join(repo, "dist", "emmer-node.js")],
  deno: [nodeBin("deno"), "run", "-A", "--config", join(repo, "deno.json"), join(repo, "serve.ts")],
  bun: [nodeBin("bun"), "run", join(repo, "serve.ts")],
};

const TFTPD_HPA = "/usr/sbin/in.tftpd";
const ATFTPD = join(repo, "bench", ".peers", "atftpd", "usr", "sbin", "atftpd");

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command to its end (killed by PID after `timeoutMs`), stdin from `input`. */
function run(argv: string[], { cwd = top, input, timeoutMs = 60_000 }: { cwd?: string; input?: Uint8Array; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout!.on("data", (d) => out.push(d));
    child.stderr!.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    if (input) child.stdin!.end(input);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

const cli = (rt: string, args: string[], options?: Parameters<typeof run>[1]) => run([...RUNTIMES[rt], ...args], options);

/** A UDP port free on 127.0.0.1 just now (the kernel's pick), for a server that cannot take port 0. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.on("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something answers a TFTP request on the port (an ERROR for a file that is not there). */
async function answering(port: number, child: ChildProcess): Promise<void> {
  const rrq = Buffer.from("\0\x01no-such-file-probe\0octet\0", "latin1");
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited ${child.exitCode}`);
    const answered = await new Promise<boolean>((resolve) => {
      const s = createSocket("udp4");
      const timer = setTimeout(() => (s.close(), resolve(false)), 100);
      s.on("message", () => (clearTimeout(timer), s.close(), resolve(true)));
      s.on("error", () => (clearTimeout(timer), s.close(), resolve(false)));
      s.send(rrq, port, "127.0.0.1");
    });
    if (answered) return;
  }
  throw new Error(`nothing answers on port ${port}`);
}

interface Server {
  name: string;
  port: number;
  root: string;
  /** Does it grant windowsize (RFC 7440)? */
  windowsize: boolean;
  /** Its text for ERROR 1 (file not found). */
  notFound: RegExp;
  /** What it printed so far (atftpd logs the options it granted). */
  log(): string;
  stop(): Promise<void>;
}

let top = "";
const files: Record<string, Uint8Array> = {
  "file.bin": bytesOf(2 * 1024 * 1024 + 77, 21), // not a multiple of any blksize asked here
  "exact.bin": bytesOf(1468 * 64, 22), // a multiple of blksize 1468: ends with an empty DATA
  "lines.txt": new TextEncoder().encode("first line\nsecond line\nlast\n".repeat(500)),
};
const events: TransferEvent[] = [];
let emmer: Emmer;
/** The servers started, or why one did not start (uvu would swallow a failing before hook). */
const servers: Record<string, Server | Error> = {};

async function seeded(name: string): Promise<string> {
  const root = join(top, name);
  await mkdir(root);
  for (const [file, bytes] of Object.entries(files)) await writeFile(join(root, file), bytes);
  return root;
}

async function startEmmer(): Promise<Server> {
  const root = await seeded("emmer");
  emmer = new Emmer({ hostname: "127.0.0.1", port: 0, onError: () => {}, drainTimeout: 500, onTransfer: (e) => events.push(e) });
  const dir = serveDir(root, { write: true });
  // Fails after 200 000 bytes have gone out: the server sends ERROR 0 in the middle of the transfer.
  emmer.read("broken.bin", () => (async function* () {
    yield bytesOf(200_000, 5);
    throw new Error("the disk went away");
  })());
  emmer.read("*", dir.read);
  emmer.write("*", dir.write!);
  await emmer.listen();
  const log = () => "";
  return { name: "emmer", port: emmer.address!.port, root, windowsize: true, notFound: /server said ERROR 1: file not found$/m, log, stop: () => emmer.close() };
}

/** A peer server on a free port. */
async function startPeer(name: string, cmd: string, args: (root: string, port: number) => string[], windowsize: boolean, notFound: RegExp): Promise<Server> {
  const root = await seeded(name);
  const port = await freePort();
  const child = spawn(cmd, args(root, port), { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stdout!.on("data", (d) => (err += d));
  child.stderr!.on("data", (d) => (err += d));
  try {
    await answering(port, child);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${name} did not start: ${(error as Error).message} ${err}`);
  }
  const stop = () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once("exit", () => resolve()), child.kill("SIGTERM"))));
  return { name, port, root, windowsize, notFound, log: () => err, stop };
}

const user = userInfo().username;
const group = spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim();

test.before(async () => {
  // Always: a bundle older than the sources would test old code.
  spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit", timeout: 60_000 });
  top = await mkdtemp(join(tmpdir(), "emmer-client-cli-"));
  const started = (p: Promise<Server>) => p.catch((error) => (error instanceof Error ? error : new Error(String(error))));
  servers.emmer = await started(startEmmer());
  // -c: uploads may create files (-s DIR, -L in the foreground, -u the user it runs as).
  if (existsSync(TFTPD_HPA)) {
    const args = (root: string, port: number) => ["-L", "-u", user, "-c", "-s", root, "-a", `127.0.0.1:${port}`];
    servers["tftpd-hpa"] = await started(startPeer("tftpd-hpa", TFTPD_HPA, args, false, /server said ERROR 1: File not found$/m));
  }
  if (existsSync(ATFTPD)) {
    // --verbose=7 logs the options granted ("windowsize option -> 8"), on stdout with --logfile -.
    const args = (root: string, port: number) => [
      "--daemon", "--no-fork", "--port", String(port), "--bind-address", "127.0.0.1", "--user", user, "--group", group, "--logfile", "-", "--verbose=7", root,
    ];
    servers.atftpd = await started(startPeer("atftpd", ATFTPD, args, true, /server said ERROR 1: File not found$/m));
  }
});

test.after(async () => {
  for (const s of Object.values(servers)) if (!(s instanceof Error)) await s.stop();
  await rm(top, { recursive: true, force: true });
});

const HINTS: Record<string, string> = {
  "tftpd-hpa": "CI must install tftpd-hpa: .ci/install-peers.sh",
  atftpd: "CI must unpack atftpd: .ci/install-atftpd.sh",
};

const INSTALLED: Record<string, boolean> = { emmer: true, "tftpd-hpa": existsSync(TFTPD_HPA), atftpd: existsSync(ATFTPD) };

/** A test against server `name`: skipped when it is not installed, except in CI where that fails. */
function serverTest(name: string, title: string, fn: (s: Server) => Promise<void>) {
  const full = `${name}: ${title}`;
  if (!INSTALLED[name] && !CI) return test.skip(full);
  test(full, async () => {
    const s = servers[name];
    if (!INSTALLED[name]) assert.unreachable(`${name} is not installed (${HINTS[name]})`);
    if (s instanceof Error) throw s;
    await fn(s);
  });
}

function emmerServer(): Server {
  const s = servers.emmer;
  if (s instanceof Error) throw s;
  return s;
}

let serial = 0;
const fresh = (what: string) => `${what}-${++serial}`;

for (const rt of Object.keys(RUNTIMES)) {
  for (const name of ["emmer", "tftpd-hpa", "atftpd"]) {
    serverTest(name, `${rt}: get and put, sha256-checked${name === "tftpd-hpa" ? "" : ", windowsize 8"}`, async (s) => {
      const window = s.windowsize ? ["--windowsize", "8"] : [];
      for (const file of ["file.bin", "exact.bin"]) {
        const out = join(top, fresh("got"));
        const before = events.length;
        const logged = s.log().length;
        const r = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/${file}`, "-o", out, ...window]);
        assert.is(r.code, 0, r.stderr);
        assert.is(r.stderr, "", "nothing on stderr when it is a pipe");
        assert.is(sha(await readFile(out)), sha(files[file]), `${file} from ${s.name}`);
        if (s.name === "emmer") {
          const e = events.slice(before).find((x) => x.kind === "read" && x.filename === file);
          assert.ok(e, "Emmer logged the download");
          assert.is(e!.blksize, 1468);
          assert.is(e!.windowsize, 8);
        }
        if (s.name === "atftpd") assert.match(s.log().slice(logged), /windowsize option -> 8/);
      }
      const remote = fresh("up") + ".bin";
      const local = join(top, fresh("local"));
      await writeFile(local, files["file.bin"]);
      const r = await cli(rt, ["put", local, `tftp://127.0.0.1:${s.port}/${remote}`, ...window]);
      assert.is(r.code, 0, r.stderr);
      assert.is(sha(await readFile(join(s.root, remote))), sha(files["file.bin"]), `upload to ${s.name}`);
    });

    serverTest(name, `${rt}: a missing file exits 1 with the server's ERROR text and leaves no file`, async (s) => {
      const dir = join(top, fresh("empty"));
      await mkdir(dir);
      const r = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/not-there.bin`], { cwd: dir });
      assert.is(r.code, 1);
      assert.match(r.stderr, s.notFound);
      assert.equal(await readdir(dir), [], "no partial, empty or temporary file");
    });
  }

  serverTest("tftpd-hpa", `${rt}: --mode netascii gets and puts a text file unchanged (LF <-> CR LF on the wire)`, async (s) => {
    const out = join(top, fresh("text"));
    const r = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/lines.txt`, "--mode", "netascii", "-o", out]);
    assert.is(r.code, 0, r.stderr);
    assert.is(sha(await readFile(out)), sha(files["lines.txt"]));
    const remote = `${fresh("text-up")}.txt`;
    const p = await cli(rt, ["put", out, `tftp://127.0.0.1:${s.port}/${remote};mode=netascii`]);
    assert.is(p.code, 0, p.stderr);
    assert.is(sha(await readFile(join(s.root, remote))), sha(files["lines.txt"]), "tftpd-hpa stored LF lines");
  });

  test(`${rt}: -o - writes the bytes to stdout, put - reads stdin; a percent-encoded path is decoded`, async () => {
    const s = emmerServer();
    const remote = "a b%c.bin";
    const p = await cli(rt, ["put", "-", `tftp://localhost:${s.port}/a%20b%25c.bin`], { input: files["file.bin"] });
    assert.is(p.code, 0, p.stderr);
    assert.is(sha(await readFile(join(s.root, remote))), sha(files["file.bin"]));
    const g = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/a%20b%25c.bin`, "-o", "-", "-b", "512"]);
    assert.is(g.code, 0, g.stderr);
    assert.is(sha(g.stdout), sha(files["file.bin"]));
  });

  test(`${rt}: an IPv6 address in brackets: tftp://[::1]:PORT/PATH`, async () => {
    const v6 = new Emmer({ hostname: "::1", port: 0, onError: () => {} });
    v6.read("*", serveDir(emmerServer().root).read);
    await v6.listen();
    try {
      const out = join(top, fresh("v6"));
      const r = await cli(rt, ["get", `tftp://[::1]:${v6.address!.port}/file.bin`, "-o", out, "-W", "4"]);
      assert.is(r.code, 0, r.stderr);
      assert.is(sha(await readFile(out)), sha(files["file.bin"]));
    } finally {
      await v6.close();
    }
  });

  test(`${rt}: put to a URL ending in / names the file after the local one; default output is the path's last part`, async () => {
    const s = emmerServer();
    await mkdir(join(s.root, fresh("sub")));
    const sub = `sub-${serial}`;
    const local = join(top, `${fresh("named")}.bin`);
    await writeFile(local, files["exact.bin"]);
    const p = await cli(rt, ["put", local, `tftp://127.0.0.1:${s.port}/${sub}/`]);
    assert.is(p.code, 0, p.stderr);
    assert.is(sha(await readFile(join(s.root, sub, local.slice(local.lastIndexOf("/") + 1)))), sha(files["exact.bin"]));
    const dir = join(top, fresh("cwd"));
    await mkdir(dir);
    const g = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/${sub}/${local.slice(local.lastIndexOf("/") + 1)}`], { cwd: dir });
    assert.is(g.code, 0, g.stderr);
    assert.equal(await readdir(dir), [local.slice(local.lastIndexOf("/") + 1)]);
  });

  for (
    const [args, message] of [
      [["get", "ftp://127.0.0.1/x"], /not a tftp:\/\/HOST\[:PORT\]\/PATH URL/],
      [["get", "tftp://127.0.0.1:70000/x"], /port must be 1 to 65535/],
      [["get", "tftp://127.0.0.1/"], /names no file/],
      [["get", "tftp://127.0.0.1/%zz"], /bad percent-escape/],
      [["get"], /get takes one URL, not nothing/],
      [["put", "tftp://127.0.0.1/x"], /put takes a FILE \(or -\) and a URL/],
      [["get", "tftp://127.0.0.1/x", "--blksize", "7"], /--blksize must be an integer from 8 to 65464, not "7"/],
      [["get", "tftp://127.0.0.1/x", "--mode", "mail"], /--mode must be octet or netascii/],
      [["get", "tftp://127.0.0.1/x", "--bogus"], /unknown flag "--bogus"/],
    ] as [string[], RegExp][]
  ) {
    test(`${rt}: emmer-node ${args.join(" ")} is a usage error: exit 2`, async () => {
      const r = await cli(rt, args);
      assert.is(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /--help lists the flags/);
    });
  }

  test(`${rt}: a download that fails midway exits 1 with the server's ERROR and leaves no partial file`, async () => {
    const s = emmerServer();
    const dir = join(top, fresh("midway"));
    await mkdir(dir);
    const r = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/broken.bin`, "-o", "broken.bin"], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(r.stderr, /^emmer-node: server said ERROR 0: .+$/m);
    assert.equal(await readdir(dir), [], "no partial or temporary file");
  });

  test(`${rt}: an output file that cannot be created exits 1 before any request; a missing FILE to put too`, async () => {
    const s = emmerServer();
    const before = events.length;
    const g = await cli(rt, ["get", `tftp://127.0.0.1:${s.port}/file.bin`, "-o", join(top, "no-such-dir", "out.bin")]);
    assert.is(g.code, 1);
    assert.match(g.stderr, /^emmer-node: cannot write .*no-such-dir\/out\.bin: .*ENOENT/m);
    const p = await cli(rt, ["put", join(top, "no-such-file"), `tftp://127.0.0.1:${s.port}/x.bin`]);
    assert.is(p.code, 1);
    assert.match(p.stderr, /^emmer-node: cannot read .*no-such-file: .*ENOENT/m);
    assert.is(events.length, before, "the server saw no transfer");
  });

  test(`${rt}: a server that does not answer: exit 1, "no answer"`, async () => {
    const port = await freePort(); // nothing listens there
    const r = await cli(rt, ["get", `tftp://127.0.0.1:${port}/x`, "--retries", "0", "-o", join(top, fresh("none"))]);
    assert.is(r.code, 1);
    assert.match(r.stderr, /^emmer-node: get tftp:\/\/127\.0\.0\.1:\d+\/x: no answer from the server$/m);
  });

  test(`${rt}: get --help and put --help print the client's usage and exit 0`, async () => {
    for (const command of ["get", "put"]) {
      const r = await cli(rt, [command, "--help"]);
      assert.is(r.code, 0);
      const lines = r.stdout.toString().replace(/\n$/, "").split("\n");
      assert.ok(lines.length <= 24, `${lines.length} lines`);
      for (const line of lines) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
      for (const f of ["-o, --output", "-b, --blksize", "-W, --windowsize", "-t, --timeout", "--retries", "-m, --mode", "-q, --quiet"]) {
        assert.ok(lines.some((l) => l.includes(f)), `${f} missing`);
      }
    }
  });

  /** Runs the CLI in a pseudo-terminal (script(1)); returns what the terminal received. */
  const inTerminal = async (args: string[]) => {
    const quoted = [...RUNTIMES[rt], ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    // -e: script's exit status is the command's; stty gives the terminal a known width.
    const r = await run(["script", "-q", "-e", "-c", `stty cols 100 rows 30; exec ${quoted}`, "/dev/null"]);
    // Deno clears its own progress area on a terminal (cursor to column 0, erase line and below)
    // before the program runs: not the CLI's output.
    // deno-lint-ignore no-control-regex -- ANSI terminal escapes (ESC)
    return { code: r.code, screen: r.stdout.toString().replace(/\x1b\[0G\x1b\[2K\x1b\[J/g, "") };
  };
  const hasScript = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;

  test(`${rt}: on a terminal a progress line shows percent, bytes, rate and ETA, redrawn in place, and a final line`, async () => {
    if (!hasScript) {
      if (CI) assert.unreachable("script(1) is missing (util-linux's bsdutils)");
      return console.log("  skipped: no script(1)");
    }
    const s = emmerServer();
    const out = join(top, fresh("tty"));
    const { code, screen } = await inTerminal(["get", `tftp://127.0.0.1:${s.port}/file.bin`, "-o", out]);
    assert.is(code, 0, screen);
    assert.is(sha(await readFile(out)), sha(files["file.bin"]));
    // deno-lint-ignore no-control-regex -- ANSI terminal escapes (ESC)
    const frames = screen.split("\r").map((f) => f.replace(/\x1b\[K/g, "").trim()).filter((f) => f !== "");
    const last = frames[frames.length - 1];
    assert.match(last, /^file\.bin \[#+\] 100%\s+2\.0 MiB \/ 2\.0 MiB\s+[0-9.]+ [KMG]?i?B\/s {2}in [0-9.]+ s$/, JSON.stringify(screen));
    for (const frame of frames.slice(0, -1)) assert.match(frame, /^file\.bin \[[# ]+\]\s+\d{1,3}%\s+[0-9.]+ [KM]?i?B \/ 2\.0 MiB\s+[0-9.]+ [KMG]?i?B\/s {2}ETA (--:--|\d\d:\d\d)$/, JSON.stringify(frame));
    for (const frame of frames) assert.ok(frame.length < 100, `wider than the terminal: ${frame}`);
  });

  test(`${rt}: on a terminal, an upload of unknown size shows bytes and rate; -q shows nothing`, async () => {
    if (!hasScript) {
      if (CI) assert.unreachable("script(1) is missing (util-linux's bsdutils)");
      return console.log("  skipped: no script(1)");
    }
    const s = emmerServer();
    const local = join(top, fresh("tty-up"));
    await writeFile(local, files["lines.txt"]);
    // netascii: the size on the wire is not the file's, so no total
    const up = await inTerminal(["put", local, `tftp://127.0.0.1:${s.port}/${fresh("tty-up")}.txt`, "--mode", "netascii"]);
    assert.is(up.code, 0, up.screen);
    // deno-lint-ignore no-control-regex -- ANSI terminal escapes (ESC)
    assert.match(up.screen, /\rtty-up-\d+\.txt {2}[0-9.]+ KiB {2}[0-9.]+ [KMG]?i?B\/s {2}in [0-9.]+ s\x1b\[K\r?\n/, JSON.stringify(up.screen));
    assert.not.match(up.screen, /%/);
    const quiet = await inTerminal(["get", `tftp://127.0.0.1:${s.port}/file.bin`, "-q", "-o", join(top, fresh("quiet"))]);
    assert.is(quiet.code, 0, quiet.screen);
    assert.is(quiet.screen, "");
  });
}

test.run();
