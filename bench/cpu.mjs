// Where the time goes: for lock-step, windowed and upload transfers, the CPU
// each server spends per block in user space and in the kernel, beside its
// wall time. And, where `perf` is installed, how Emmer/Node's samples split
// between the kernel, Node's C++, libc and JIT-compiled JavaScript.
//   node bench/cpu.mjs [--size-mib N --runs N]
// tftpd-hpa forks a process per transfer, and its children's CPU is not
// reported to the daemon; so a server's share is measured the same way for all:
// the machine's CPU time over the run (/proc/stat) minus the client's own
// (the shell's `times` after the client exits). Other processes on the
// machine count as the server's: run it on an otherwise idle machine.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, repo, serversFor, startServers, stopServers } from "./servers.mjs";

const SIZE = flag("--size-mib", 50) * 1024 * 1024;
const RUNS = flag("--runs", 2);
const HZ = 100; // USER_HZ: /proc/stat counts in hundredths of a second on Linux

const { dir, root, path: served, sha256: want, remove } = fixture("cpu", "file.bin", SIZE);

/** The machine's user and kernel (system, irq, softirq) CPU seconds so far. */
function machineCpu() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = f;
  return { user: (user + nice) / HZ, kernel: (system + irq + softirq) / HZ };
}

/** Runs a client `repeat` times in a row through `sh`, then the shell's `times`: wall, the client's user and system seconds, ok. */
function runClient(cmd, args, repeat = 1) {
  const once = [cmd, ...args].map((a) => `'${String(a).replaceAll("'", `'\\''`)}'`).join(" ");
  const quoted = Array(repeat).fill(once).join(" && ");
  const m0 = machineCpu();
  const t0 = process.hrtime.bigint();
  const r = spawnSync("sh", ["-c", `{ ${quoted}; } >/dev/null 2>&1; s=$?; times; exit $s`], { encoding: "utf8", timeout: 300_000 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const m1 = machineCpu();
  // `times` prints the shell's own times, then its children's: "0m0.40s 0m4.61s".
  const sec = (t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  };
  const [cu, cs] = (r.stdout.trim().split("\n")[1] ?? "").trim().split(/\s+/).map(sec);
  return { ok: r.status === 0, wall, serverUser: m1.user - m0.user - cu, serverKernel: m1.kernel - m0.kernel - cs, client: cu + cs };
}

const sha = (path) => (existsSync(path) ? createHash("sha256").update(readFileSync(path)).digest("hex") : "");

const out = join(dir, "out.bin");
const curl = (blksize, repeat) => ({
  name: `curl, blksize ${blksize}${repeat ? ` (${repeat} downloads)` : ""}`,
  client: "curl",
  blksize,
  repeat,
  args: (p) => ["curl", ...clientArgs.curlGet(p, blksize, out)],
});
const scenarios = [
  curl(512),
  curl(1468),
  // 800 blocks per download: 16 in a row, or /proc/stat's 10 ms ticks would be 12.5 µs per block.
  curl(65464, 16),
  { name: "atftp, blksize 1468, windowsize 16", client: "atftp", blksize: 1468, windowed: true, args: (p) => ["atftp", ...clientArgs.atftpGet(p, out, 16)] },
  { name: "atftp put, blksize 1468", client: "atftp", blksize: 1468, upload: true, args: (p) => ["atftp", ...clientArgs.atftpPut(p, `up-${p}.bin`, served)] },
];

// Emmer on Node against the two C servers and the npm tftp server, unless BENCH_SERVERS says otherwise.
process.env.BENCH_SERVERS ??= "emmer/node,tftpd-hpa,atftpd,npm tftp";
const servers = await startServers(root, { extra: ["--write"], write: true });
const rows = [];
for (const sc of scenarios) {
  if (!has(sc.client)) {
    console.log(`${sc.name}: client ${sc.client} missing`);
    continue;
  }
  const targets = serversFor(sc, servers);
  const runs = Object.fromEntries(targets.map((s) => [s.name, []]));
  for (const { server: s } of alternating(targets, RUNS)) {
    rmSync(out, { force: true });
    const [cmd, ...args] = sc.args(s.port);
    const r = runClient(cmd, args, sc.repeat);
    const landed = sc.upload ? join(root, `up-${s.port}.bin`) : out;
    r.ok &&= sha(landed) === want;
    if (sc.upload) rmSync(landed, { force: true });
    runs[s.name].push(r);
  }
  const blocks = Math.ceil(SIZE / sc.blksize) * (sc.repeat ?? 1);
  for (const s of targets) {
    const rs = runs[s.name];
    const mid = (f) => median(rs.map(f));
    rows.push({
      scenario: sc.name,
      server: s.name,
      ok: rs.every((r) => r.ok),
      wall: mid((r) => r.wall),
      user: (mid((r) => r.serverUser) / blocks) * 1e6,
      kernel: (mid((r) => r.serverKernel) / blocks) * 1e6,
      client: (mid((r) => r.client) / blocks) * 1e6,
      perBlock: (mid((r) => r.wall) / blocks) * 1e6,
    });
  }
}
stopServers(servers);

console.log(`\nCPU per block, ${SIZE / 1024 / 1024} MiB, median of ${RUNS} (µs; a server's share is the machine's CPU minus the client's)\n`);
console.log("| scenario | server | wall (s) | wall per block | server user-space | server kernel | client |");
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const f = (v) => (r.ok ? v.toFixed(1) : "failed");
  console.log(`| ${r.scenario} | ${r.server} | ${r.ok ? r.wall.toFixed(2) : "failed"} | ${f(r.perBlock)} | ${f(r.user)} | ${f(r.kernel)} | ${f(r.client)} |`);
}

await perfSplit();
remove();

/**
 * Emmer/Node under `perf record` during a lock-step download at blksize 512:
 * its samples by shared object. Node runs with --perf-basic-prof, so that
 * JIT-compiled JavaScript is named as such.
 */
async function perfSplit() {
  if (!has("perf") || !has("curl")) {
    console.log("\nperf split: skipped (perf or curl missing; bash bench/install.sh installs perf)");
    return;
  }
  const port = "16999";
  // V8 writes its code log (isolate-*.log) into the working directory: keep it out of the repository.
  const scratch = mkdtempSync(join(tmpdir(), "emmer-perf-"));
  const server = spawn(process.execPath, ["--perf-basic-prof", join(repo, "dist", "emmer-node.js"), "--root", root, "--port", port], { cwd: scratch, stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 1500));
  const data = join(scratch, "perf.data");
  const seconds = 6;
  const rec = spawn("perf", ["record", "-F", "2000", "-p", String(server.pid), "-o", data, "--", "sleep", String(seconds)], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 300));
  spawnSync("curl", clientArgs.curlGet(port, 512, out, { maxTime: seconds - 1 }));
  const recorded = await new Promise((r) => rec.on("exit", (code) => r(code === 0)));
  const report = recorded ? spawnSync("perf", ["report", "-i", data, "--no-children", "--sort", "dso", "--stdio"], { encoding: "utf8" }).stdout : "";
  server.kill("SIGTERM");
  await new Promise((r) => server.on("exit", r));
  rmSync(scratch, { recursive: true, force: true });
  rmSync(`/tmp/perf-${server.pid}.map`, { force: true }); // --perf-basic-prof's symbol map
  if (!recorded) {
    console.log("\nperf split: perf record failed (perf_event_paranoid, or not allowed here)");
    return;
  }
  const shares = new Map();
  for (const m of report.matchAll(/^\s+([\d.]+)%\s+(.+?)\s*$/gm)) {
    const dso = m[2];
    const kind = dso.startsWith("[kernel") ? "kernel" : dso.startsWith("[JIT]") ? "JIT-compiled JavaScript" : dso === "node" ? "node (V8, Node's C++, libuv)" : dso.startsWith("libc") ? "libc" : "other";
    shares.set(kind, (shares.get(kind) ?? 0) + Number(m[1]));
  }
  console.log(`\nEmmer/Node's samples during curl at blksize 512 (perf record -F 2000, ${seconds} s)\n`);
  console.log("| where | share of samples |");
  console.log("|---|---:|");
  for (const [kind, pct] of [...shares].sort((a, b) => b[1] - a[1])) console.log(`| ${kind} | ${pct.toFixed(1)}% |`);
}
