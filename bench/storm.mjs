// Boot storm: 200 curl clients at once (blksize 1468), each fetching the same
// 4 MiB file, against each server in turn, alternating the order, `runs` times.
// Median wall time for all of them, the server's CPU per block (perf task-clock,
// when perf is installed), and failures over all runs (a client exit code or a
// wrong sha256).
//   node bench/storm.mjs [--clients N --size-mib N --runs N]
// All clients come from 127.0.0.1, so Emmer runs with --max-requests-per-second
// above the storm (its default of 100 per address is meant for real networks,
// where a storm comes from many addresses).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, peakMiB, startServers, stopServers } from "./servers.mjs";
import { family, taskClock, taskClockDone } from "./task_clock.mjs";

const CLIENTS = flag("--clients", 200);
const SIZE = flag("--size-mib", 4) * 1024 * 1024;
const RUNS = flag("--runs", 3);

const { dir, root, sha256: want, remove } = fixture("storm", "kernel.img", SIZE);

/** Resolves with curl's exit code. The bytes are checked after the storm: hashing 800 MB on the same two
 * vCPUs while the other clients still run would be the harness's CPU, timed as the server's. */
function curl(port, out) {
  return new Promise((resolve) => {
    const child = spawn("curl", clientArgs.curlGet(port, 1468, out, { name: "kernel.img" }), { stdio: "ignore" });
    child.on("close", (code) => resolve(code));
  });
}

/** Whether a client's file is the one served; removed either way. */
function intact(out) {
  let ok = false;
  try {
    ok = createHash("sha256").update(readFileSync(out)).digest("hex") === want;
  } catch {
    // no file: curl failed before writing one
  }
  rmSync(out, { force: true });
  return ok;
}

// Emmer on Node also runs with two worker processes: this machine has two cores.
// And in single-port mode: every transfer's datagrams through one socket, drained and sent in batches.
const servers = await startServers(root, { extra: ["--max-requests-per-second", "100000"], workers: 2, singlePort: true });
const runs = Object.fromEntries(servers.map((s) => [s.name, { seconds: [], cpu: [], failed: 0 }]));
// The server's CPU over the storm (bench/task_clock.mjs; workers and tftpd-hpa's children included).
const PERF = has("perf");
for (const { server: s } of alternating(servers, RUNS)) {
  let seconds = 0, failed = 0;
  const storm = async () => {
    const t0 = process.hrtime.bigint();
    const codes = await Promise.all(Array.from({ length: CLIENTS }, (_, j) => curl(s.port, join(dir, `out-${j}`))));
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    failed = codes.filter((code, j) => !intact(join(dir, `out-${j}`)) || code !== 0).length;
    return true;
  };
  const ms = PERF ? await taskClock(family(s.child.pid), storm) : (await storm(), NaN);
  runs[s.name].seconds.push(seconds);
  runs[s.name].cpu.push(ms);
  runs[s.name].failed += failed;
  console.log(`${s.name}: ${seconds.toFixed(1)} s, ${failed} failed, server CPU ${(ms / 1000).toFixed(1)} s`);
}
taskClockDone();
const BLOCKS = CLIENTS * Math.ceil((SIZE + 1) / 1468);
const rows = servers.map((s) => ({
  name: s.name,
  seconds: median(runs[s.name].seconds),
  failed: runs[s.name].failed,
  peak: peakMiB(s.child.pid),
  usPerBlock: (median(runs[s.name].cpu) * 1000) / BLOCKS,
}));
stopServers(servers);
remove();

const peers = rows.filter((r) => !r.name.startsWith("emmer") && r.failed === 0);
const best = peers.length ? Math.min(...peers.map((r) => r.seconds)) : NaN;
console.log(`\nBoot storm: ${CLIENTS} curl clients at once, blksize 1468, ${SIZE / 1024 / 1024} MiB each, median wall time of ${RUNS} runs, failed transfers over all runs (ratio: best peer / server, >1 is faster)\n`);
const f = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "-");
console.log("| server | wall time (s) | failed | vs best peer | server CPU per block (µs) | peak memory (MiB) |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.name} | ${r.seconds.toFixed(1)} | ${r.failed} | ${(best / r.seconds).toFixed(2)}x | ${f(r.usPerBlock)} | ${r.peak.toFixed(1)} |`);
