// The command line as users run it, in a child process: the bundled
// dist/emmer-node.js on Node, `deno run -A serve.ts` on Deno, `bun run serve.ts`
// on Bun. Real flags, real sockets, Ctrl-C.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TftpClient, type TftpError } from "../mod.ts";
import { loadRuntime, runtimeName } from "../adapters/runtime.ts";
import type { DatagramTransport } from "../core/transport.ts";
import { rawExchange, within } from "./support/raw.ts";
import { get, hasPeer } from "./support/peers.ts";
import { testNeeding } from "./support/needs.ts";
import { bytesOf } from "./support/session_driver.ts";
import { buildCli, command, repo } from "./support/cli_command.ts";


test.before(() => assert.ok(buildCli(), "the CLI bundle was not built"));

function runToEnd(args: string[], wrap: string[] = []) {
  const argv = [...wrap, process.execPath, ...command, ...args];
  return spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 20_000 });
}

/**
 * A prefix that runs a command in a network namespace of its own (loopback up), so that
 * it can bind fixed ports (the default 3942, 69) without meeting anything else on this
 * machine. `then`: a command that runs the command (setpriv ...), inside.
 */
const netns = (then = "") => ["unshare", "--user", "--map-root-user", "--net", "sh", "-c", `ip link set lo up && exec ${then} "$0" "$@"`];
const netnsWorks = spawnSync("unshare", [...netns().slice(1), "true"], { timeout: 10_000 }).status === 0;

/** The prefix that runs a command in the network (and user) namespace of process `pid`. */
const enter = (pid: number) => ["nsenter", "-t", String(pid), "--user", "--net", "--preserve-credentials"];

/**
 * Starts the server; resolves with its port once it prints its startup line.
 * `maxFds`: run it under `ulimit -n` (through sh, which then execs the runtime: same process).
 */
function start(args: string[], cwd = repo, maxFds?: number, wrap: string[] = []): Promise<{ child: ChildProcess; port: number; out: () => string }> {
  const argv = [...wrap, process.execPath, ...command, ...args];
  const child = maxFds === undefined
    ? spawn(argv[0], argv.slice(1), { cwd, stdio: ["ignore", "pipe", "pipe"] })
    : spawn("sh", ["-c", `ulimit -n ${maxFds} && exec "$0" "$@"`, ...argv], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stderr!.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /on (?:\[[0-9a-f:.]+\]|[0-9.]+):(\d+);/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), out: () => out });
    });
    child.on("exit", (code) => reject(new Error(`emmer-node exited ${code}: ${out}`)));
  });
}

/**
 * Ctrl-C; resolves with the exit code. Deno's node:child_process reports the
 * signal that was sent (code null) even when the child handled it and exited 0,
 * so on Deno the child's own shutdown line stands for the code.
 */
function stop(child: ChildProcess, out: () => string): Promise<number | null> {
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      const handled = /stopping \(live transfers get/.test(out());
      resolve(runtimeName() === "deno" && code === null && signal === "SIGINT" && handled ? 0 : code);
    });
    child.kill("SIGINT");
  });
}

test("out of file descriptors: the next requests hear \"server busy\", never an internal error", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-fds-"));
  await writeFile(join(dir, "f.bin"), bytesOf(4096));
  // A low descriptor limit; each stalled transfer holds a socket and an open file for 30 s.
  const { child, port, out } = await start(["--root", dir, "--port", "0", "--timeout", "30"], repo, 80);
  try {
    const runtime = await loadRuntime();
    const rrq = Uint8Array.from([0, 1, ...new TextEncoder().encode("f.bin"), 0, ...new TextEncoder().encode("octet"), 0]);
    const answers: string[] = [];
    // Every client keeps its socket (and so its port) to the end: a port reused while its earlier
    // transfer lives would be taken for a repeated request and get no answer, rightly.
    const clients: DatagramTransport[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        let answer!: (a: string) => void;
        const got = new Promise<string>((resolve) => (answer = resolve));
        const client = await runtime.bind("127.0.0.1", 0, (d) =>
          answer(d[1] === 3 ? "DATA" : d[1] === 5 ? `ERROR ${d[3]} ${new TextDecoder().decode(d.subarray(4, -1))}` : `op ${d[1]}`));
        clients.push(client);
        client.send(rrq, port, "127.0.0.1", () => {});
        answers.push(await within(runtime, got, 5000, `answer to request ${i}`));
      }
    } finally {
      for (const c of clients) c.close();
    }
    const kinds = [...new Set(answers)];
    assert.ok(answers.includes("DATA"), `no transfer started: ${kinds}`);
    assert.ok(answers.some((a) => a.startsWith("ERROR 0 server busy")), `the descriptors never ran out: ${kinds}`);
    for (const a of kinds) assert.match(a, /^(DATA|ERROR 0 server busy: (too many open files|no port for the transfer))$/);
  } finally {
    await stop(child, out);
    await rm(dir, { recursive: true, force: true });
  }
});

for (const [args, message] of [
  [["--bogus"], /unknown flag "--bogus"/],
  [["--port", "70000"], /--port must be an integer from 0 to 65535/],
  [["--port"], /--port needs a value/],
  [["--max-blksize", "7"], /--max-blksize must be an integer from 8 to 65464/],
  [["--timeout", "1.5"], /--timeout must be an integer/],
  [["--write=yes"], /--write takes no value/],
  [["--root", "/nonexistent/emmer"], /not a folder/],
  [["--host", "localhost"], /--host must be an IP address such as 127\.0\.0\.1, 0\.0\.0\.0 or ::, not "localhost"/],
  [["--workers", "0"], /--workers must be an integer from 1 to 64/],
  // short flags and getopt's spellings
  [["-p", "70000"], /-p must be an integer from 0 to 65535, not "70000"/],
  [["-p70000"], /-p must be an integer from 0 to 65535, not "70000"/],
  [["-wvp"], /-p needs a value/],
  [["-wx"], /unknown flag "-x" in "-wx"/],
  [["-r", "/nonexistent/emmer"], /--root \/nonexistent\/emmer: not a folder/],
  [["srv"], /unexpected argument "srv" \(the folder to serve is given with --root DIR\)/],
  [["-a", "localhost:69"], /-a must be an IP address .* not "localhost:69"/],
  [["--address", "[127.0.0.1]:69"], /--address must be an IP address/],
  [["-a", "[::1]:x"], /the port in -a must be an integer from 0 to 65535, not "x"/],
  // fleet flags
  [["--mtu", "60"], /--mtu must be an integer from 68 to 65535, not "60"/],
  [["--client", "10.0.0.0/8:blksize=7"], /--client "10\.0\.0\.0\/8:blksize=7": blksize takes 8\.\.65464 or no, not "7"/],
  [["--client", "10.0.0.0/8"], /--client "10\.0\.0\.0\/8": expected RANGE:key=value/],
  [["--client", "10.0.0.0/40:tsize=no"], /--client "10\.0\.0\.0\/40": the prefix length must be from 0 to 32/],
  [["--map-file", "/nonexistent/emmer.map"], /--map-file \/nonexistent\/emmer\.map: ENOENT/],
  [["--windows-names=yes"], /--windows-names takes no value/],
  ...(runtimeName() === "node"
    ? [
      [["--workers", "2", "--port", "0"], /--workers needs a fixed --port/],
    ]
    : [[["--workers", "2"], /--workers needs Node/]]),
] as [string[], RegExp][]) {
  test(`emmer-node ${args.join(" ")}: a clear message and exit 2`, () => {
    const r = runToEnd(args);
    assert.is(r.status, 2);
    assert.match(r.stderr, message);
  });
}

for (const flag of ["--help", "-h"]) {
  test(`emmer-node ${flag} lists every flag on one screen (24 lines of 80 columns) and exits 0`, () => {
    const r = runToEnd([flag]);
    assert.is(r.status, 0);
    const lines = r.stdout.replace(/\n$/, "").split("\n");
    assert.ok(lines.length <= 24, `${lines.length} lines`);
    for (const line of lines) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
    for (
      const f of ["-r, -s, --root", "-a, --host", "-p, --port", "-w, -c, --write", "--max-blksize", "--max-windowsize", "--timeout", "--retries",
        "--max-sessions", "--max-requests-per-second", "--single-port", "--workers", "-v, --verbose", "-V, --version", "-h, --help",
        "-m, --map-file", "--windows-names", "--mtu", "--client"]
    ) {
      assert.ok(r.stdout.includes(f), `${f} missing from --help`);
    }
  });
}

for (const flag of ["--version", "-V"]) {
  test(`emmer-node ${flag} prints the package's version and exits 0`, async () => {
    const { version } = JSON.parse(await readFile(join(repo, "package.json"), "utf8"));
    const r = runToEnd([flag]);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, `emmer-node ${version}\n`);
  });
}

testNeeding("with no flags it serves the current folder read-only on 127.0.0.1:3942 (in a network namespace of its own), logs each transfer, stops on Ctrl-C", { "unshare and nsenter": netnsWorks, curl: hasPeer("curl") }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    await writeFile(join(dir, "boot.bin"), bytesOf(300_000, 4));
    const { child, port, out } = await start([], dir, undefined, netns());
    assert.is(port, 3942);
    assert.match(out(), /serving .* \(read-only\) on 127\.0\.0\.1:3942;/);
    const [cmd, ...pre] = enter(child.pid!);
    const curl = (...args: string[]) => spawnSync(cmd, [...pre, "curl", "-s", "--max-time", "10", ...args], { timeout: 15_000 });
    const got = curl("--tftp-blksize", "1468", "-o", join(dir, "got.bin"), "tftp://127.0.0.1:3942/boot.bin");
    assert.is(got.status, 0, String(got.stderr));
    assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), bytesOf(300_000, 4));
    const put = curl("-T", join(dir, "got.bin"), "tftp://127.0.0.1:3942/new.bin");
    assert.is(put.status, 69, "a read-only server accepted an upload (curl exits 69 on ERROR 2)");
    assert.is(await stop(child, out), 0);
    assert.match(out(), /127\.0\.0\.1:\d+ read "boot\.bin" 293\.0 KiB [0-9.]+ s ok/);
    assert.match(out(), /write "new\.bin" 0 B .* failed: sent ERROR 2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

for (const spelling of [["--write", "--root", "DIR", "--port", "0", "--verbose"], ["-wv", "-r", "DIR", "-p0"], ["-c", "-s", "DIR", "--port=0"], ["-w", "-a", ":0", "-rDIR"]]) {
  test(`${spelling.join(" ")} accepts uploads into DIR`, async () => {
    const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
    try {
      const { child, port, out } = await start(spelling.map((a) => a.replace("DIR", dir)));
      assert.match(out(), /\(read-write\) on 127\.0\.0\.1:\d+;/);
      const client = new TftpClient("127.0.0.1", port, { timeoutMs: 500 });
      await client.put("up.bin", bytesOf(50_000, 9), { blksize: 1000 });
      assert.equal(new Uint8Array(await readFile(join(dir, "up.bin"))), bytesOf(50_000, 9));
      assert.is(await stop(child, out), 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test("-a [::1]:0 listens on IPv6 loopback and says so with brackets", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    await writeFile(join(dir, "f.bin"), bytesOf(5000, 3));
    const { child, port, out } = await start(["-a", "[::1]:0", "-r", dir]);
    assert.match(out(), new RegExp(`on \\[::1\\]:${port}; Ctrl-C stops`));
    assert.equal((await new TftpClient("::1", port, { timeoutMs: 500 }).get("f.bin")).data, bytesOf(5000, 3));
    assert.is(await stop(child, out), 0);
    assert.match(out(), /\[::1\]:\d+ read "f\.bin" 4\.9 KiB [0-9.]+ s ok/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("-a :: (dual-stack): an IPv4 client is served and logged as plain IPv4", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    await writeFile(join(dir, "f.bin"), bytesOf(100_000, 5));
    const { child, port, out } = await start(["-a", "::", "-p", "0", "-r", dir]);
    assert.match(out(), new RegExp(`on \\[::\\]:${port}; Ctrl-C stops`));
    const got = await new TftpClient("127.0.0.1", port, { timeoutMs: 500 }).get("f.bin", { blksize: 1400, windowsize: 4 });
    assert.equal(got.data, bytesOf(100_000, 5));
    if (hasPeer("curl")) {
      const r = await get("curl", { host: "127.0.0.1", port, remote: "f.bin", local: join(dir, "got.bin"), timeoutMs: 15_000 });
      assert.is(r.code, 0, r.stderr);
      assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), bytesOf(100_000, 5));
    } else assert.ok(process.env.CI !== "true", "curl is needed");
    assert.is(await stop(child, out), 0);
    assert.is(out().match(/ 127\.0\.0\.1:\d+ read "f\.bin" 97\.7 KiB [0-9.]+ s ok/g)?.length, hasPeer("curl") ? 2 : 1, out());
    assert.not.match(out(), /ffff/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

testNeeding("--port 69 without CAP_NET_BIND_SERVICE: exit 1 with what to do (setcap, a port >= 1024)", { "unshare and setpriv": netnsWorks }, () => {
  // In a namespace of its own, the capability taken out of the bounding set: the bind meets EACCES.
  const r = runToEnd(["--port", "69"], netns("setpriv --bounding-set=-net_bind_service --inh-caps=-net_bind_service"));
  assert.is(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:69: .*(EACCES|Permission denied)/);
  assert.match(r.stderr, /ports below 1024 need privilege: give \w+ CAP_NET_BIND_SERVICE/);
  assert.match(r.stderr, /sudo setcap cap_net_bind_service=\+ep \//);
  assert.match(r.stderr, /a port >= 1024/);
});

test("Ctrl-C during an upload: new requests hear \"server shutting down\", the upload fails, and no temporary file is left", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  const { child, port, out } = await start(["--write", "--root", dir, "--port", "0"]);
  const runtime = await loadRuntime();
  let uploader: DatagramTransport | null = null;
  try {
    // An upload that sends one block and then falls silent, its socket kept open.
    const heard: Uint8Array[] = [];
    let next!: () => void;
    uploader = await runtime.bind("127.0.0.1", 0, (d, _a, from) => (heard.push(d.slice()), (tid = from), next?.()));
    let tid = 0;
    const answer = () => new Promise<void>((resolve) => (next = resolve));
    const enc = new TextEncoder();
    let got = answer();
    uploader.send(Uint8Array.from([0, 2, ...enc.encode("slow.bin"), 0, ...enc.encode("octet"), 0]), port, "127.0.0.1", () => {});
    await within(runtime, got, 3000, "ACK 0");
    got = answer();
    uploader.send(Uint8Array.from([0, 3, 0, 1, ...bytesOf(512, 5)]), tid, "127.0.0.1", () => {});
    await within(runtime, got, 3000, "ACK 1");
    for (let i = 0; i < 100 && !(await readdir(dir)).some((n) => n.includes("emmer-upload")); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok((await readdir(dir)).some((n) => n.includes("emmer-upload")), "the upload never reached a temporary file");
    const stopped = stop(child, out);
    for (let i = 0; i < 200 && !/stopping/.test(out()); i++) await new Promise((r) => setTimeout(r, 10));
    // During the drain (the signal taken: a request before it would be served): a new request is told, not ignored.
    let refusal: Uint8Array | null = null;
    for (let i = 0; i < 20 && refusal === null; i++) {
      const a = await rawExchange(port, [0, 1, ...enc.encode("x"), 0, ...enc.encode("octet"), 0], 500).catch(() => null);
      if (a !== null) refusal = a.data;
    }
    assert.ok(refusal !== null, "no answer to a request during the drain");
    assert.equal([refusal![1], refusal![3], new TextDecoder().decode(refusal!.subarray(4, -1))], [5, 0, "server shutting down"]);
    assert.is(await stopped, 0);
    assert.ok(heard.some((d) => d[1] === 5), "the upload was not told it failed");
    assert.equal((await readdir(dir)).filter((n) => n.includes("emmer-upload") || n === "slow.bin"), [], "the upload left a file behind");
  } finally {
    uploader?.close();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

test("a log pipe that closes does not stop the server: transfers go on", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  const { child, port, out } = await start(["--root", dir, "--port", "0"]);
  try {
    await writeFile(join(dir, "f.bin"), bytesOf(3000, 6));
    child.stdout!.destroy(); // the reader of its log goes away: its next line meets EPIPE
    const client = new TftpClient("127.0.0.1", port, { timeoutMs: 500 });
    for (let i = 0; i < 3; i++) assert.equal((await client.get("f.bin")).data, bytesOf(3000, 6), `download ${i}`);
    assert.is(child.exitCode, null, `the server exited: ${out()}`);
  } finally {
    await stop(child, out);
    await rm(dir, { recursive: true, force: true });
  }
});

test("a port already in use: a message and exit 1", async () => {
  const { child, port, out } = await start(["--port", "0"]);
  try {
    const r = runToEnd(["--port", String(port)]);
    assert.is(r.status, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
  } finally {
    await stop(child, out);
  }
});

/**
 * A UDP port that was free a moment ago (for --workers, which needs a fixed port). Below the
 * kernel's ephemeral range (32768 and up here), where no client socket of a test running
 * alongside can take it before the server binds it; only an explicit bind can.
 */
async function freePort(): Promise<number> {
  const { createSocket } = await import("node:dgram");
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const socket = createSocket("udp4");
    const free = await new Promise<boolean>((done) => {
      socket.once("error", () => done(false));
      socket.bind(port, "127.0.0.1", () => done(true));
    });
    await new Promise<void>((done) => socket.close(() => done()));
    if (free) return port;
  }
}

if (runtimeName() === "node") {
  test("--workers 2: worker processes share the port, serve concurrent transfers, a dead one is replaced, all stop on Ctrl-C", async () => {
    const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
    try {
      await writeFile(join(dir, "k.img"), bytesOf(400_000, 6));
      const { child, port, out } = await start(["--workers", "2", "--root", dir, "--port", String(await freePort())]);
      assert.match(out(), /2 worker processes/);
      const workers = spawnSync("ps", ["--ppid", String(child.pid), "-o", "pid="], { encoding: "utf8" }).stdout.trim().split(/\s+/);
      assert.is(workers.length, 2, `worker processes: ${workers.join(", ")}`);
      const gets = Array.from({ length: 8 }, () => new TftpClient("127.0.0.1", port, { timeoutMs: 500 }).get("k.img", { blksize: 1468 }));
      for (const r of await Promise.all(gets)) assert.equal(r.data, bytesOf(400_000, 6));
      // A worker that dies is replaced, and the port goes on serving.
      process.kill(Number(workers[0]), "SIGKILL");
      for (let i = 0; i < 100 && !/died \(SIGKILL\); starting another/.test(out()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(out(), new RegExp(`worker ${workers[0]} died \\(SIGKILL\\); starting another`));
      const after = await new TftpClient("127.0.0.1", port, { timeoutMs: 500 }).get("k.img", { blksize: 1468 });
      assert.equal(after.data, bytesOf(400_000, 6));
      const replaced = spawnSync("ps", ["--ppid", String(child.pid), "-o", "pid="], { encoding: "utf8" }).stdout.trim().split(/\s+/);
      assert.is(replaced.length, 2, `worker processes after the replacement: ${replaced.join(", ")}`);
      assert.is(await stop(child, out), 0);
      assert.is(out().match(/read "k\.img" 390\.6 KiB [0-9.]+ s ok/g)?.length, 9, out());
      workers.push(...replaced);
      for (const pid of workers) assert.throws(() => process.kill(Number(pid), 0), "a worker outlived the server");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** The sockets bound to `port`, each with the processes that hold it (ss: one line per socket, its inode). */
  const socketsOn = (port: number) =>
    spawnSync("ss", ["-Huapne", `sport = :${port}`], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean).map((line) => ({
      inode: line.match(/ino:(\d+)/)![1],
      pids: [...line.matchAll(/pid=(\d+)/g)].map((m) => m[1]).sort(),
    })).sort((a, b) => a.inode.localeCompare(b.inode));

  test("--single-port --workers 2: a socket per worker on the port, kept by the primary; a dead worker's replacement gets the same socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
    try {
      const port = await freePort();
      const args = ["--single-port", "--workers", "2", "--root", dir, "--port", String(port)];
      if (process.env.EMMER_NATIVE === "off") {
        // No FFI, no SO_REUSEPORT sockets: said, with what to do instead, before any worker starts.
        const r = runToEnd(args);
        assert.is(r.status, 2, r.stderr);
        assert.match(r.stderr, /--single-port with --workers needs sockets of Emmer's own \(SO_REUSEPORT\).*run one process, or drop --single-port/);
        return;
      }
      await writeFile(join(dir, "k.img"), bytesOf(400_000, 6));
      const { child, out } = await start(args);
      assert.match(out(), /2 worker processes, a socket each \(SO_REUSEPORT\)/);
      const workers = spawnSync("ps", ["--ppid", String(child.pid), "-o", "pid="], { encoding: "utf8" }).stdout.trim().split(/\s+/).sort();
      assert.is(workers.length, 2, `worker processes: ${workers.join(", ")}`);
      // Two sockets on the port, each held by the primary and by one worker.
      const before = socketsOn(port);
      assert.equal(before.map((s) => s.pids), workers.map((w) => [String(child.pid), w].sort()), JSON.stringify(before));
      // Every transfer is answered from the port itself, by whichever worker the kernel gave the client to.
      const gets = Array.from({ length: 12 }, () => new TftpClient("127.0.0.1", port, { timeoutMs: 500 }).get("k.img", { blksize: 1468 }));
      for (const r of await Promise.all(gets)) assert.equal(r.data, bytesOf(400_000, 6));
      process.kill(Number(workers[0]), "SIGKILL");
      for (let i = 0; i < 100 && !/died \(SIGKILL\); starting another/.test(out()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(out(), new RegExp(`worker ${workers[0]} died \\(SIGKILL\\); starting another`));
      let after = socketsOn(port);
      for (let i = 0; i < 100 && after.some((s) => s.pids.length < 2); i++) (await new Promise((r) => setTimeout(r, 50)), (after = socketsOn(port)));
      // The same two sockets (the kernel's group did not change): the replacement holds the dead worker's.
      assert.equal(after.map((s) => s.inode), before.map((s) => s.inode));
      const replacement = after.flatMap((s) => s.pids).find((pid) => pid !== String(child.pid) && !workers.includes(pid));
      assert.ok(replacement, JSON.stringify(after));
      assert.equal(after.find((s) => s.pids.includes(replacement!))!.inode, before.find((s) => s.pids.includes(workers[0]))!.inode);
      const more = Array.from({ length: 6 }, () => new TftpClient("127.0.0.1", port, { timeoutMs: 500 }).get("k.img", { blksize: 1468 }));
      for (const r of await Promise.all(more)) assert.equal(r.data, bytesOf(400_000, 6));
      assert.is(await stop(child, out), 0);
      assert.is(socketsOn(port).length, 0, "the primary left a socket open");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("--single-port --workers 2 on a port in use: a message and exit 1, no socket joins the other server's", async () => {
    const { child, port, out } = await start(["--port", "0"]);
    try {
      const r = runToEnd(["--single-port", "--workers", "2", "--port", String(port)]);
      if (process.env.EMMER_NATIVE === "off") return assert.is(r.status, 2, r.stderr);
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: bind\(127\.0\.0\.1:\d+\): EADDRINUSE/);
    } finally {
      await stop(child, out);
    }
  });

  test("--workers 2 on a port in use: a message and exit 1", async () => {
    const { child, port, out } = await start(["--port", "0"]);
    try {
      const r = runToEnd(["--workers", "2", "--port", String(port)]);
      assert.is(r.status, 1);
      assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
    } finally {
      await stop(child, out);
    }
  });
}

test("--map-file with a bad rule: the file, the line and what is wrong, exit 2, before serving", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    await writeFile(join(dir, "rules"), "# ok\nrg \\\\ /\nrx a b\n");
    const r = runToEnd(["--map-file", join(dir, "rules"), "-p", "0"]);
    assert.is(r.status, 2);
    assert.match(r.stderr, new RegExp(`--map-file ${join(dir, "rules")}: line 3: unknown flag "x"`));
    assert.not.match(r.stdout, /serving/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("--windows-names and --map-file: a WDS tree served under the names its clients ask; the log says both names", async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    const root = join(dir, "root");
    await mkdir(join(root, "Boot", "x86"), { recursive: true });
    await writeFile(join(root, "Boot", "x86", "wdsnbp.com"), bytesOf(30_000, 5));
    await writeFile(join(root, "Boot", "BCD"), "bcd");
    // tftpd-hpa-style rules: the old PXE name goes to the WDS one; nothing under private/.
    await writeFile(join(dir, "rules"), "ri ^pxeboot\\.n12$ boot\\\\x86\\\\wdsnbp.com\nai ^\\\\?private[/\\\\]\n");
    const { child, port, out } = await start(["-r", root, "-p", "0", "--windows-names", "-m", join(dir, "rules")]);
    const client = new TftpClient("127.0.0.1", port, { timeoutMs: 500 });
    assert.equal((await client.get("boot\\x86\\WDSNBP.COM", { blksize: 1468 })).data, bytesOf(30_000, 5));
    assert.equal((await client.get("PXEboot.n12")).data, bytesOf(30_000, 5));
    assert.is(new TextDecoder().decode((await client.get("\\Boot\\bcd")).data), "bcd");
    try {
      await client.get("\\Private\\x");
      assert.unreachable("a refused name was served");
    } catch (e) {
      assert.equal([(e as TftpError).code, (e as TftpError).message], [2, "access denied"]);
    }
    if (hasPeer("tftp-hpa")) {
      // A real client sends the backslashes as they are.
      const got = spawnSync("tftp", ["-l", "-m", "octet", "127.0.0.1", String(port), "-c", "get", "Boot\\BCD", join(dir, "bcd")], { timeout: 15_000 });
      assert.is(got.status, 0, String(got.stdout));
      assert.is(await readFile(join(dir, "bcd"), "utf8"), "bcd");
    } else assert.ok(process.env.CI !== "true", "tftp-hpa missing");
    assert.is(await stop(child, out), 0);
    assert.match(out(), /read "boot\\\\x86\\\\WDSNBP\.COM" 29\.3 KiB [0-9.]+ s ok/);
    assert.match(out(), /read "boot\\\\x86\\\\wdsnbp\.com" \(requested "PXEboot\.n12"\) 29\.3 KiB/);
    assert.match(out(), /read "\\\\Private\\\\x" 0 B .* failed: sent ERROR 2 access denied/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

testNeeding("--client and --mtu reach a real client: curl asking blksize 1468 gets what the range or the MTU allows", { curl: hasPeer("curl") }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-cli-"));
  try {
    await writeFile(join(dir, "f.bin"), bytesOf(20_000, 6));
    const curl = (port: number) => {
      const r = spawnSync("curl", ["-v", "-s", "--max-time", "10", "--tftp-blksize", "1468", "-o", join(dir, "got.bin"), `tftp://127.0.0.1:${port}/f.bin`], { encoding: "utf8", timeout: 15_000 });
      assert.is(r.status, 0, r.stderr);
      return /blksize parsed from OACK \((\d+)\)/.exec(r.stderr)?.[1];
    };
    for (const [args, want] of [
      [["--client", "127.0.0.0/8:blksize=1024,tsize=no"], "1024"], // curl's own line: "blksize parsed from OACK (1024) requested (1468)"
      [["--client", "10.0.0.0/8:blksize=512", "--client", "127.0.0.2:blksize=600"], "1468"], // no range holds 127.0.0.1
      [["--mtu", "1200"], "1168"], // 1200 - 20 (IPv4) - 8 (UDP) - 4 (TFTP)
      [["--mtu", "1500", "--client", "127.0.0.1:mtu=576"], "544"],
    ] as [string[], string][]) {
      const { child, port, out } = await start(["-r", dir, "-p", "0", "-v", ...args]);
      try {
        assert.is(curl(port), want, args.join(" "));
        assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), bytesOf(20_000, 6));
      } finally {
        assert.is(await stop(child, out), 0);
      }
      assert.match(out(), new RegExp(`blksize=${want} `));
      // curl asks tsize too: withheld, it is not in the OACK.
      if (args[1].includes("tsize=no")) assert.match(out(), /oack=\{"blksize":"1024","timeout":"\d+"\}\n/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
