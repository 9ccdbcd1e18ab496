// Server CPU as the kernel counts it: `perf stat -e task-clock -p PIDS` attached
// while `run` runs. perf stat's counters are inherited by default (-i turns that
// off), so the children tftpd-hpa forks per transfer count too: their time is added
// when they exit. Processes that exist already (Emmer's --workers) are named in PIDS.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let scratch = null;

/** `pid` and its child processes alive now (Emmer's --workers). */
export function family(pid) {
  const children = spawnSync("ps", ["--ppid", String(pid), "-o", "pid="], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
  return [String(pid), ...children];
}

/** Milliseconds of task-clock the processes spent while `run` ran (it may return a promise of success); NaN when perf or the run failed. */
export async function taskClock(pids, run) {
  scratch ??= mkdtempSync(join(tmpdir(), "emmer-perfstat-"));
  const csv = join(scratch, `${pids.join("-")}.csv`);
  const perf = spawn("perf", ["stat", "-e", "task-clock", "-x", ",", "-o", csv, "-p", pids.join(",")], { stdio: "ignore" });
  const exited = new Promise((r) => perf.on("exit", r));
  await sleep(300); // attached before the client starts
  const ok = await run();
  await sleep(300); // a forked child still finishing (tftpd-hpa) exits and is summed in
  perf.kill("SIGINT");
  const killer = setTimeout(() => perf.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(killer);
  const line = existsSync(csv) ? readFileSync(csv, "utf8").split("\n").find((l) => l.includes("task-clock")) : undefined;
  rmSync(csv, { force: true });
  const ms = Number(line?.split(",")[0]);
  return ok && Number.isFinite(ms) ? ms : NaN;
}

/** Removes the scratch folder (call once at the end). */
export function taskClockDone() {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = null;
}
