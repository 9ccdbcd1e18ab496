// Running emmer-node as a service, in child processes on real sockets: /metrics
// scraped with curl and checked against the transfers the test made, JSON log lines,
// systemd socket activation (systemd-socket-activate), --port-range and --user.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadRuntime, runtimeName } from "../adapters/runtime.ts";
import { rawExchange, within } from "./support/raw.ts";
import { hasPeer, run } from "./support/peers.ts";
import { testNeeding } from "./support/needs.ts";
import { bytesOf } from "./support/session_driver.ts";
import { buildCli, command } from "./support/cli_command.ts";

test.before(() => assert.ok(buildCli(), "the CLI bundle was not built"));

const curl = { curl: hasPeer("curl") };
const socketActivate = { "systemd-socket-activate": spawnSync("systemd-socket-activate", ["--version"], { timeout: 5000 }).status === 0 };

interface Server {
  child: ChildProcess;
  out: () => string;
  /** Resolves with the first match of `re` in the output, or rejects after `ms`. */
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function launch(argv: string[]): Server {
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const waiters = new Set<() => void>();
  const grew = (d: unknown) => {
    out += d;
    for (const w of [...waiters]) w();
  };
  child.stdout!.on("data", grew);
  child.stderr!.on("data", grew);
  // Bound: a server the test forgets is not left running.
  const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => (clearTimeout(guard), resolve(code))));
  const waitFor = (re: RegExp, ms = 10_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) done(() => resolve(m));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${ms} ms in:\n${out}`))), ms);
      const done = (then: () => void) => (clearTimeout(timer), waiters.delete(check), then());
      waiters.add(check);
      check();
    });
  return { child, out: () => out, waitFor, exited };
}

const serverArgv = (args: string[], wrap: string[] = []) => [...wrap, process.execPath, ...command, ...args];

async function stop(s: Server): Promise<void> {
  if (s.child.exitCode === null) s.child.kill("SIGINT");
  await s.exited;
}

const jsonLines = (out: string) => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));

/**
 * A UDP port free just now (for tools that need a port number before anything binds it): one
 * the runtime picked, returned once the kernel shows no socket on it (Deno closes a socket whose
 * receive is pending a little later than close() returns).
 */
async function freePort(): Promise<number> {
  const runtime = await loadRuntime();
  const t = await runtime.bind("127.0.0.1", 0, () => {});
  const port = t.port;
  t.close();
  for (let i = 0; i < 100; i++) {
    const r = spawnSync("ss", ["-Hlun", `sport = :${port}`], { encoding: "utf8", timeout: 5000 });
    if (r.status !== 0 || r.stdout.trim() === "") break; // no ss: the retries in activate() cover it
    await new Promise((next) => setTimeout(next, 10));
  }
  return port;
}

/**
 * emmer-node under systemd-socket-activate listening on a free port, once it listens. The port
 * freePort() found can be taken again before the tool binds it (a runtime may close its probe
 * socket later): then another port, up to three tries.
 */
async function activate(flags: string[], socketFlags: string[]): Promise<{ s: Server; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // The tool passes the server only the variables it is told to: the suite's datagram path too.
    const env = process.env.EMMER_NATIVE === undefined ? [] : ["-E", `EMMER_NATIVE=${process.env.EMMER_NATIVE}`];
    const s = launch(serverArgv(flags, ["systemd-socket-activate", ...env, ...socketFlags, "-l", `127.0.0.1:${port}`]));
    const listening = s.waitFor(/Listening on 127\.0\.0\.1:\d+ as 3/).then(() => true);
    const taken = s.exited.then(() => false);
    if (await Promise.race([listening, taken])) return { s, port };
    listening.catch(() => {});
    if (attempt >= 3 || !/Address already in use/.test(s.out())) throw new Error(`systemd-socket-activate did not listen:\n${s.out()}`);
  }
}

async function scrape(url: string): Promise<{ code: string; body: string }> {
  const r = await run("curl", ["-s", "--max-time", "5", "-w", "\n%{http_code}", url], 10_000);
  const at = r.stdout.lastIndexOf("\n");
  return { body: r.stdout.slice(0, at), code: r.stdout.slice(at + 1) };
}

/** The value of one series in exposition text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

testNeeding("--metrics: a curl scrape counts a download, a not-found refusal, an upload and a timeout; --log-format json logs each", curl, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-ops-"));
  const file = bytesOf(3000);
  await writeFile(join(dir, "f.bin"), file);
  await writeFile(join(dir, "local.bin"), bytesOf(1234));
  // --retries 0: a client that stops answering is given up at its first timeout (1 s).
  const s = launch(serverArgv(["--root", dir, "--port", "0", "--write", "--timeout", "1", "--retries", "0", "--metrics", "127.0.0.1:0", "--log-format", "json"]));
  try {
    const [, port, metricsUrl] = await s.waitFor(/on 127\.0\.0\.1:(\d+); metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics);/);
    const url = (name: string) => `tftp://127.0.0.1:${port}/${name}`;
    const got = await run("curl", ["-s", "--max-time", "10", "-o", join(dir, "got.bin"), url("f.bin")], 15_000);
    assert.is(got.code, 0, got.stderr);
    assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), file);
    const missing = await run("curl", ["-s", "--max-time", "10", "-o", join(dir, "none"), url("missing.bin")], 15_000);
    assert.is.not(missing.code, 0);
    const up = await run("curl", ["-s", "--max-time", "10", "-T", join(dir, "local.bin"), url("up.bin")], 15_000);
    assert.is(up.code, 0, up.stderr);
    // The upload's line comes with its last ACK, not 3 s later at the end of its dally.
    await s.waitFor(/"file":"up\.bin"/, 1500);

    // A download whose client acknowledges block 1 and then goes silent.
    const runtime = await loadRuntime();
    let first!: (port: number) => void;
    const data1 = new Promise<number>((resolve) => (first = resolve));
    const silent = await runtime.bind("127.0.0.1", 0, (d, _a, from) => d[1] === 3 && d[3] === 1 && first(from));
    try {
      silent.send(Uint8Array.from([0, 1, ...new TextEncoder().encode("f.bin"), 0, ...new TextEncoder().encode("octet"), 0]), Number(port), "127.0.0.1", () => {});
      const from = await within(runtime, data1, 5000, "DATA 1");
      silent.send(Uint8Array.from([0, 4, 0, 1]), from, "127.0.0.1", () => {});
      await s.waitFor(/"reason":"timeout"/, 5000);
    } finally {
      silent.close();
    }

    const { code, body } = await scrape(metricsUrl);
    assert.is(code, "200");
    const expect: [string, number][] = [
      ['emmer_transfers_started_total{kind="read"}', 2],
      ['emmer_transfers_started_total{kind="write"}', 1],
      ['emmer_transfers_ended_total{kind="read",outcome="ok"}', 1],
      ['emmer_transfers_ended_total{kind="read",outcome="timeout"}', 1],
      ['emmer_transfers_ended_total{kind="write",outcome="ok"}', 1],
      ['emmer_requests_refused_total{kind="read",reason="not_found"}', 1],
      ['emmer_transfer_timeouts_total{kind="read"}', 1],
      ['emmer_transfer_bytes_total{kind="read"}', 3000 + 512],
      ['emmer_transfer_bytes_total{kind="write"}', 1234],
      ['emmer_transfer_blocks_total{kind="read"}', 6 + 1],
      ['emmer_transfer_blocks_total{kind="write"}', 3],
      ['emmer_handler_seconds_count{kind="read"}', 3],
      ['emmer_transfer_duration_seconds_count{kind="read",outcome="ok"}', 1],
      ['emmer_transfer_duration_seconds_count{kind="read",outcome="failed"}', 1],
    ];
    for (const [series, value] of expect) assert.is(sample(body, series), value, series);
    assert.ok(sample(body, "process_resident_memory_bytes")! > 1024 * 1024, "process memory");
    assert.ok(sample(body, "emmer_sessions")! <= 1, "live sessions (the upload may still dally)");
    assert.not.match(body, /127\.0\.0\.1|f\.bin|up\.bin/, "an address or a file name as a label");
    assert.is((await scrape(metricsUrl.replace("/metrics", "/other"))).code, "404");

    const lines = jsonLines(s.out());
    const byFile = Object.fromEntries(lines.map((l) => [`${l.file} ${l.outcome}`, l]));
    const ok = byFile["f.bin ok"];
    assert.equal(
      [ok.event, ok.kind, ok.mode, ok.bytes, ok.blocks, ok.retransmits, ok.error, ok.reason, ok.client.startsWith("127.0.0.1:")],
      ["transfer", "read", "octet", 3000, 6, 0, null, null, true],
    );
    assert.equal(ok.asked.tsize, "0", "curl asks for tsize");
    assert.equal(ok.granted.tsize, "3000");
    const refusal = byFile["missing.bin failed"];
    assert.equal([refusal.event, refusal.reason, refusal.error], ["refusal", "not_found", { code: 1, message: "file not found", by: "server" }]);
    const upload = byFile["up.bin ok"];
    assert.equal([upload.event, upload.kind, upload.bytes, upload.blocks], ["transfer", "write", 1234, 3]);
    assert.ok(upload.duration < 1, `the upload's duration includes its dally: ${upload.duration} s`);
    const timeout = byFile["f.bin failed"];
    assert.equal([timeout.reason, timeout.blocks, timeout.error.message], ["timeout", 1, "timed out"]);
    for (const l of lines) assert.equal(Object.keys(l), Object.keys(ok), "every line has the same keys");
  } finally {
    await stop(s);
    await rm(dir, { recursive: true, force: true });
  }
});

testNeeding("Ctrl-C while an acknowledged upload dallies: its line says ok, once, and the server exits at once", curl, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-ops-"));
  await writeFile(join(dir, "local.bin"), bytesOf(700));
  // A 5 s timeout: the dally (3 timeouts) would hold the server for 15 s.
  const s = launch(serverArgv(["--root", dir, "--port", "0", "--write", "--timeout", "5", "--log-format", "json"]));
  try {
    const [, port] = await s.waitFor(/on 127\.0\.0\.1:(\d+);/);
    const up = await run("curl", ["-s", "--max-time", "10", "-T", join(dir, "local.bin"), `tftp://127.0.0.1:${port}/up.bin`], 15_000);
    assert.is(up.code, 0, up.stderr);
    await s.waitFor(/"file":"up\.bin"/, 2000);
    const t0 = Date.now();
    await stop(s);
    assert.ok(Date.now() - t0 < 4000, `the server waited ${Date.now() - t0} ms for the dally`);
    const lines = jsonLines(s.out()).filter((l) => l.file === "up.bin");
    assert.equal(lines.map((l) => [l.outcome, l.error]), [["ok", null]]);
    assert.equal(await readFile(join(dir, "up.bin")), await readFile(join(dir, "local.bin")));
  } finally {
    await stop(s);
    await rm(dir, { recursive: true, force: true });
  }
});

for (const [args, message] of [
  [["--metrics", "localhost:9469"], /--metrics must be ADDR:PORT, e\.g\. 127\.0\.0\.1:9469/],
  [["--metrics", "127.0.0.1"], /--metrics must be ADDR:PORT/],
  [["--metrics", "::1:9469"], /--metrics must be ADDR:PORT/],
  [["--metrics", "127.0.0.1:70000"], /the port in --metrics must be an integer from 0 to 65535/],
  [["--log-format", "xml"], /--log-format must be text or json, not "xml"/],
  [["--port-range", "6000-5000"], /--port-range must be A-B with 1 <= A <= B <= 65535/],
  [["--port-range", "5000"], /--port-range must be A-B/],
  [["--port-range", "5000-5001", "--single-port"], /with --single-port, transfers use the listening port only/],
  [["--user", "no-such-user-here"], /--user no user "no-such-user-here" in \/etc\/passwd/],
  [["--user", "nobody:no-such-group"], /no group "no-such-group"/],
] as const) {
  test(`emmer-node ${args.join(" ")}: exit 2 with what is wrong`, () => {
    const argv = serverArgv([...args]);
    const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 20_000 });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  });
}

test("--metrics on a port that is taken: exit 1 before serving", async () => {
  const http = await import("node:http");
  const busy = http.createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  try {
    const argv = serverArgv(["--port", "0", "--metrics", `127.0.0.1:${(busy.address() as { port: number }).port}`]);
    const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 20_000 });
    assert.is(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /cannot serve metrics on 127\.0\.0\.1:\d+/);
    assert.not.match(r.stdout, /serving/);
  } finally {
    busy.close();
  }
});

testNeeding("socket activation: under systemd-socket-activate the passed socket is served (curl downloads); Deno says it cannot", { ...socketActivate, ...curl }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-ops-"));
  const file = bytesOf(5000);
  await writeFile(join(dir, "boot.bin"), file);
  // systemd-socket-activate binds the port and execs the server (same pid) on the first datagram.
  const { s, port } = await activate(["--root", dir, "--port", "1", "--single-port", "--metrics", "127.0.0.1:0"], ["--datagram"]);
  try {
    const got = await run("curl", ["-s", "--max-time", "10", "-o", join(dir, "got.bin"), `tftp://127.0.0.1:${port}/boot.bin`], 15_000);
    if (runtimeName() === "deno") {
      assert.is(await s.exited, 2);
      assert.match(s.out(), /systemd passed a socket \(LISTEN_FDS\), which Deno cannot take: run emmer-node on Node or Bun/);
      assert.is.not(got.code, 0);
      return;
    }
    assert.is(got.code, 0, got.stderr + s.out());
    assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), file);
    assert.match(s.out(), new RegExp(`on 127\\.0\\.0\\.1:${port}; socket from systemd;`));
    // The line comes with the last ACK, which curl may send just as it exits.
    await s.waitFor(/"boot\.bin" 4\.9 KiB [0-9.]+ s ok/, 3000);
    // Node with its batch path reads systemd's socket as its own: in single-port mode the request
    // and every ACK (one per 512-byte block) came by recvmmsg.
    const metricsUrl = s.out().match(/metrics on (http:\/\/[^/]+\/metrics)/)![1];
    const metrics = await run("curl", ["-s", "--max-time", "10", metricsUrl], 15_000);
    const received = Number(metrics.stdout.match(/^emmer_recvmmsg_datagrams_total (\d+)/m)?.[1] ?? 0);
    const batchPath = runtimeName() === "node" && process.env.EMMER_NATIVE !== "off";
    assert.ok(batchPath ? received >= 10 : received === 0, `recvmmsg datagrams: ${received}`);
  } finally {
    await stop(s);
    await rm(dir, { recursive: true, force: true });
  }
});

const notUdp = "a descriptor that is not a UDP socket (ListenStream=): exit 2 with what to fix";
// Deno stops earlier: it takes no descriptor at all (the previous test checks that it says so).
if (runtimeName() === "deno") test.skip(notUdp);
else testNeeding(notUdp, socketActivate, async () => {
  const { s, port } = await activate(["--port", "1"], []);
  try {
    // A TCP connection activates the server.
    const net = await import("node:net");
    const conn = net.connect(port, "127.0.0.1");
    conn.on("error", () => {});
    assert.is(await s.exited, 2);
    conn.destroy();
    assert.match(s.out(), /is not a UDP socket: the \.socket unit needs ListenDatagram=, not ListenStream=/);
  } finally {
    await stop(s);
  }
});

test("--port-range: transfers answer from ports in the range", async () => {
  const base = await freePort();
  const range = [base, Math.min(base + 20, 65535)];
  const dir = await mkdtemp(join(tmpdir(), "emmer-ops-"));
  await writeFile(join(dir, "f.bin"), bytesOf(100));
  const s = launch(serverArgv(["--root", dir, "--port", "0", "--port-range", `${range[0]}-${range[1]}`]));
  try {
    const [, port] = await s.waitFor(/on 127\.0\.0\.1:(\d+);/);
    const rrq = Uint8Array.from([0, 1, ...new TextEncoder().encode("f.bin"), 0, ...new TextEncoder().encode("octet"), 0]);
    for (const name of [rrq, Uint8Array.from([0, 1, ...new TextEncoder().encode("none"), 0, ...new TextEncoder().encode("octet"), 0])]) {
      const answer = await rawExchange(Number(port), name);
      assert.ok(answer.port >= range[0] && answer.port <= range[1], `answered from ${answer.port}, outside ${range}`);
    }
  } finally {
    await stop(s);
    await rm(dir, { recursive: true, force: true });
  }
});

/** Uid and Groups of a process, from /proc. */
function ids(pid: number): { uid: string; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { uid: /^Uid:\s+(\d+)/m.exec(status)![1], groups: /^Groups:(.*)$/m.exec(status)![1].trim() };
}

const isRoot = process.getuid?.() === 0;

testNeeding("--user nobody: bound as root, then serves as nobody (uid and groups), downloads still work", { "root (to change user)": isRoot, ...curl }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "emmer-ops-"));
  await chmod(dir, 0o755); // readable by nobody
  await writeFile(join(dir, "f.bin"), bytesOf(2000), { mode: 0o644 });
  // Supplementary groups to drop (0 and 5): Deno cannot, and must say so.
  const s = launch(serverArgv(["--root", dir, "--port", "0", "--user", "nobody"], ["setpriv", "--groups", "0,5"]));
  try {
    if (runtimeName() === "deno") {
      assert.is(await s.exited, 2);
      assert.match(s.out(), /--user: this runtime cannot drop the supplementary groups \(0 5; no process\.setgroups\)/);
      return;
    }
    const [, port] = await s.waitFor(/on 127\.0\.0\.1:(\d+); as user nobody;/);
    assert.equal(ids(s.child.pid!), { uid: "65534", groups: "65534" });
    const got = await run("curl", ["-s", "--max-time", "10", "-o", join(dir, "got.bin"), `tftp://127.0.0.1:${port}/f.bin`], 15_000);
    assert.is(got.code, 0, got.stderr + s.out());
    assert.equal(new Uint8Array(await readFile(join(dir, "got.bin"))), bytesOf(2000));
  } finally {
    await stop(s);
    await rm(dir, { recursive: true, force: true });
  }
});

testNeeding("--user without supplementary groups to drop works on every runtime (Deno too)", { "root (to change user)": isRoot }, async () => {
  const s = launch(serverArgv(["--root", tmpdir(), "--port", "0", "--user", "nobody:nogroup"], ["setpriv", "--clear-groups"]));
  try {
    await s.waitFor(/as user nobody;/);
    assert.is(ids(s.child.pid!).uid, "65534");
  } finally {
    await stop(s);
  }
});

test.run();
