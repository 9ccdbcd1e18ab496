// Server CPU per block, counted by the kernel for the server's own tasks:
// `perf stat -e task-clock -p PID` attached for one client run. perf stat's
// counters are inherited by default (-i/--no-inherit turns that off), so the
// children tftpd-hpa forks per transfer count too: their time is added to the
// daemon's counter when they exit (checked: 44 ms with inheritance for an
// 8 MiB curl download from tftpd-hpa, 0.19 ms with -i). Unlike bench/cpu.mjs
// (the machine's CPU from /proc/stat minus the client's), other processes on
// the machine do not count as the server's; the client's softirq work on
// loopback counts as the client's, for every server alike.
//   node bench/native_cpu.mjs [--size-mib 8] [--runs 3] [--pin] [--only lock-step]
// --pin puts the servers (their threads and future children) and the clients
// on CPU 0 (taskset): loopback delivery then runs in the sending task, not
// sometimes on the other CPU or in ksoftirqd, so less of it moves between a
// server's count and nobody's from run to run.
// Lock-step: curl --tftp-blksize 1468. Windowed: atftp, blksize 1468,
// windowsize 16 and 64 (tftpd-hpa has no windowsize: not in those rows).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, serversFor, startServers, stopServers } from "./servers.mjs";
import { taskClock, taskClockDone } from "./task_clock.mjs";

const SIZE = flag("--size-mib", 8) * 1024 * 1024;
const RUNS = flag("--runs", 3);
const BLKSIZE = 1468;
const BLOCKS = Math.ceil(SIZE / BLKSIZE);
const PIN = process.argv.includes("--pin");
// --only lock-step (or "windowsize 64", ...): only the scenarios whose name contains it.
const ONLY = flag("--only", "");
const pinned = (argv) => (PIN ? ["taskset", "-c", "0", ...argv] : argv);

if (!has("perf")) {
  console.log("native_cpu: perf is missing (bash bench/install.sh installs it)");
  process.exit(0);
}

const { dir, root, sha256: want, remove } = fixture("native-cpu", "file.bin", SIZE);
const out = join(dir, "out.bin");

function download(cmd, args) {
  rmSync(out, { force: true });
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 120_000 });
  return r.status === 0 && existsSync(out) && createHash("sha256").update(readFileSync(out)).digest("hex") === want;
}

const scenarios = [
  { name: "lock-step: curl, blksize 1468", client: "curl", args: (p) => pinned(["curl", ...clientArgs.curlGet(p, BLKSIZE, out)]), base: "tftpd-hpa" },
  ...[16, 64].map((w) => ({
    name: `windowed: atftp, blksize 1468, windowsize ${w}`,
    client: "atftp",
    windowed: true,
    args: (p) => pinned(["atftp", ...clientArgs.atftpGet(p, out, w)]),
    base: "atftpd",
  })),
].filter((sc) => sc.name.includes(ONLY));

// Emmer on Bun with and without its GSO path: BENCH_SERVERS=emmer/bun,emmer/bun-plain,tftpd-hpa,atftpd.
process.env.BENCH_SERVERS ??= "emmer/node,tftpd-hpa,atftpd";
const servers = await startServers(root);
if (PIN) for (const s of servers) spawnSync("taskset", ["-a", "-p", "-c", "0", String(s.child.pid)], { stdio: "ignore" });
const rows = [];
for (const sc of scenarios) {
  if (!has(sc.client)) {
    console.log(`${sc.name}: client ${sc.client} missing`);
    continue;
  }
  const targets = serversFor(sc, servers);
  const ms = Object.fromEntries(targets.map((s) => [s.name, []]));
  // One unmeasured download each first: Emmer's JavaScript is compiled by then, as in a server that has been up a while.
  for (const s of targets) {
    const [cmd, ...args] = sc.args(s.port);
    download(cmd, args);
  }
  for (const { server: s } of alternating(targets, RUNS)) {
    const [cmd, ...args] = sc.args(s.port);
    ms[s.name].push(await taskClock([s.child.pid], () => download(cmd, args)));
  }
  const perBlock = Object.fromEntries(targets.map((s) => [s.name, (median(ms[s.name]) * 1000) / BLOCKS]));
  for (const s of targets) {
    const base = perBlock[sc.base];
    rows.push({ scenario: sc.name, server: s.name, us: perBlock[s.name], ratio: perBlock[s.name] / base, base: sc.base, runs: ms[s.name] });
  }
}
stopServers(servers);
taskClockDone();
remove();

const f = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "failed");
console.log(`\nServer CPU per block (perf stat -e task-clock -p, children included), ${SIZE / 1024 / 1024} MiB, median of ${RUNS}${PIN ? ", servers and clients on CPU 0" : ""}\n`);
console.log("| scenario | server | task-clock per block (µs) | ratio | runs (ms) |");
console.log("|---|---|---:|---:|---|");
for (const r of rows) console.log(`| ${r.scenario} | ${r.server} | ${f(r.us)} | ${f(r.ratio, 2)}x ${r.base} | ${r.runs.map((x) => f(x)).join(", ")} |`);
