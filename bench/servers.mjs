// The servers a benchmark compares, started on loopback. Each is reported as
// missing (with how to get it) rather than silently dropped.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(repo, "node_modules", ".bin", name);

/** A command-line flag's value (`--runs 5`): a number when `fallback` is one, else the text. */
export function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  return typeof fallback === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

/** The middle of the runs; NaN when any run failed (a median must not hide a failure). */
export const median = (xs) => (xs.some(Number.isNaN) ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

/**
 * Seconds one client run takes, which must leave `out` holding the bytes whose
 * sha256 is `want`; NaN if the client failed or the bytes differ (no figure).
 */
export function timedDownload(cmd, args, out, want) {
  rmSync(out, { force: true });
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { timeout: 300_000, stdio: "ignore" });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const ok = r.status === 0 && existsSync(out) && createHash("sha256").update(readFileSync(out)).digest("hex") === want;
  rmSync(out, { force: true });
  return ok ? seconds : NaN;
}

/** True when a command (a client such as curl or atftp) is on the PATH. */
export const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

/** The clients' arguments (after the command name), the same in every script. */
export const clientArgs = {
  /** curl, lock-step: `name` from the server into `out`. */
  curlGet: (port, blksize, out, { name = "file.bin", maxTime = 300 } = {}) =>
    ["-s", "--tftp-blksize", String(blksize), "--max-time", String(maxTime), "-o", out, `tftp://127.0.0.1:${port}/${name}`],
  /** atftp download of file.bin into `out`, at blksize 1468, with a window when asked. */
  atftpGet: (port, out, windowsize) =>
    ["-g", "-r", "file.bin", "-l", out, "--option", "blksize 1468", ...(windowsize ? ["--option", `windowsize ${windowsize}`] : []), "127.0.0.1", String(port)],
  /** atftp upload of `local` as `remote`, at blksize 1468 (lock-step: atftp sends no windowsize on a put). */
  atftpPut: (port, remote, local) => ["-p", "-r", remote, "-l", local, "--option", "blksize 1468", "127.0.0.1", String(port)],
};

/**
 * `extra`: flags for Emmer (e.g. --write, --max-sessions). `write`: peers accept uploads too.
 * `workers`: also run Emmer on Node with `--workers N` (processes sharing the port), as its own row.
 * `denoV8Flags`: Emmer on Deno with these V8 flags (e.g. a smaller young generation), as its own row, run only
 *   when named in BENCH_SERVERS (the plain `emmer/deno` row is what a user's `deno run -A serve.ts` gets).
 * `singlePort`: also run Emmer on Node with --single-port (every transfer on the listening socket), as its own row
 * (and with `workers`, both together).
 */
export function candidates(root, { extra = [], write = false, workers = 0, denoV8Flags = "", singlePort = false } = {}) {
  const emmerFlags = (p) => ["--root", root, "--port", p, ...extra];
  const node = (p) => [join(repo, "dist", "emmer-node.js"), ...emmerFlags(p)];
  const bun = (p) => ["run", join(repo, "serve.ts"), ...emmerFlags(p)];
  const deno = (...before) => (p) => ["run", "-A", ...before, "--config", join(repo, "deno.json"), join(repo, "serve.ts"), ...emmerFlags(p)];
  return [
    { name: "emmer/node", emmer: true, cmd: process.execPath, args: node },
    // The same server without the FFI path (node:dgram per datagram): what the batch calls are worth.
    { name: "emmer/node-plain", emmer: true, cmd: process.execPath, args: node, env: { EMMER_NATIVE: "off" }, onRequest: true },
    ...(singlePort ? [{ name: "emmer/node --single-port", emmer: true, cmd: process.execPath, args: (p) => [...node(p), "--single-port"] }] : []),
    ...(workers > 1 ? [{ name: `emmer/node --workers ${workers}`, emmer: true, cmd: process.execPath, args: (p) => [...node(p), "--workers", String(workers)] }] : []),
    // Both: a socket per worker on the listening port (SO_REUSEPORT), each client's datagrams to one of them.
    ...(workers > 1 && singlePort
      ? [{ name: `emmer/node --single-port --workers ${workers}`, emmer: true, cmd: process.execPath, args: (p) => [...node(p), "--single-port", "--workers", String(workers)] }]
      : []),
    { name: "emmer/deno", emmer: true, cmd: bin("deno"), args: deno() },
    // Only when named in BENCH_SERVERS: Deno without its batch path (Deno.listenDatagram per datagram).
    { name: "emmer/deno-plain", emmer: true, cmd: bin("deno"), args: deno(), env: { EMMER_NATIVE: "off" }, onRequest: true },
    ...(denoV8Flags ? [{ name: `emmer/deno --v8-flags=${denoV8Flags}`, emmer: true, cmd: bin("deno"), args: deno(`--v8-flags=${denoV8Flags}`), onRequest: true }] : []),
    { name: "emmer/bun", emmer: true, cmd: bin("bun"), args: bun },
    // Only when named in BENCH_SERVERS: Bun without its GSO path, the path of a machine without an FFI.
    { name: "emmer/bun-plain", emmer: true, cmd: bin("bun"), args: bun, env: { EMMER_NATIVE: "off" }, onRequest: true },
    {
      name: "tftpd-hpa",
      cmd: "/usr/sbin/in.tftpd",
      args: (p) => ["-L", "-u", "root", ...(write ? ["-c"] : []), "-s", root, "-a", `127.0.0.1:${p}`],
      hint: "apt-get install tftpd-hpa",
      // No windowsize option: a windowed client would measure lock-step here.
      windowsize: false,
    },
    {
      name: "atftpd",
      cmd: join(repo, "bench", ".peers", "atftpd", "usr", "sbin", "atftpd"),
      args: (p) => ["--daemon", "--no-fork", "--port", p, "--bind-address", "127.0.0.1", "--user", "root", "--group", "root", "--logfile", "/dev/null", root],
      hint: "bash bench/install.sh",
    },
    {
      name: "npm tftp",
      cmd: process.execPath,
      args: (p) => ["-e", `require("tftp").createServer({ host: "127.0.0.1", port: ${p}, root: ${JSON.stringify(root)}, denyPUT: ${!write} }).listen()`],
      requires: join(repo, "node_modules", "tftp"),
      hint: "npm ci (the tftp package is a dev dependency)",
    },
  ];
}

// BENCH_PORT_BASE moves the servers' ports (two benches at once on one machine).
let nextPort = Number(process.env.BENCH_PORT_BASE ?? 16900);

/** Starts every available server (`emmerOnly`: Emmer's only); returns them with their ports, after giving them time to bind. */
export async function startServers(root, options = {}) {
  if (!existsSync(join(repo, "dist", "emmer-node.js"))) spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit" });
  const servers = [];
  // BENCH_SERVERS=emmer/node,tftpd-hpa narrows a run to those servers (for quick comparisons while working);
  // rows marked onRequest ("emmer/node-plain") run only when named there.
  const wanted = process.env.BENCH_SERVERS?.split(",");
  for (const c of candidates(root, options)) {
    if (wanted ? !wanted.includes(c.name) : c.onRequest) continue;
    if (options.emmerOnly && !c.emmer) continue;
    if (!existsSync(c.cmd) || (c.requires && !existsSync(c.requires))) {
      console.log(`${c.name}: missing (${c.hint ?? c.cmd})`);
      continue;
    }
    const port = String(++nextPort);
    const env = c.env ? { ...process.env, ...c.env } : process.env;
    const child = spawn(c.cmd, c.args(port), { cwd: repo, env, stdio: ["ignore", "ignore", "ignore"] });
    servers.push({ ...c, port, child });
  }
  await new Promise((r) => setTimeout(r, 2500));
  return servers;
}

/**
 * Every server once per run, in alternating order (forward, then backward), so
 * that a drift in the machine's speed does not favour whoever goes first.
 */
export function* alternating(servers, runs) {
  for (let run = 0; run < runs; run++) {
    for (const server of run % 2 === 0 ? servers : [...servers].reverse()) yield { run, server };
  }
}

/** The servers a scenario applies to: a windowed one skips those without windowsize. */
export const serversFor = (scenario, servers) => (scenario.windowed ? servers.filter((s) => s.windowsize !== false) : servers);

export function stopServers(servers) {
  for (const s of servers) s.child.kill("SIGTERM");
}

/**
 * A memory figure of a process from /proc, in MiB: "VmHWM" (peak resident) or
 * "VmRSS" (now), summed with its child processes alive at the time (Emmer's
 * --workers; tftpd-hpa's per-transfer children are gone once transfers end).
 */
function statusMiB(pid, field) {
  const one = (p) => {
    let text = "";
    try {
      text = readFileSync(`/proc/${p}/status`, "utf8");
    } catch { /* gone: NaN below */ }
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1]) / 1024;
  };
  const children = spawnSync("ps", ["--ppid", String(pid), "-o", "pid="], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
  return [pid, ...children].map(one).reduce((a, b) => a + b, 0);
}

export const peakMiB = (pid) => statusMiB(pid, "VmHWM");
export const rssMiB = (pid) => statusMiB(pid, "VmRSS");

/**
 * A temporary folder with a served root and one file of `bytes` random bytes,
 * at `root/name` (or beside the root when `inRoot` is false: an upload's source).
 */
export function fixture(prefix, name, bytes, { inRoot = true } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `emmer-${prefix}-`));
  const root = join(dir, "root");
  mkdirSync(root);
  const path = join(inRoot ? root : dir, name);
  const body = Buffer.allocUnsafe(bytes);
  randomFillSync(body);
  writeFileSync(path, body);
  const sha256 = createHash("sha256").update(body).digest("hex");
  return { dir, root, path, sha256, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
