// Lock-step with the machine kept awake: curl downloads from Emmer on Node and
// tftpd-hpa, first on an otherwise idle machine, then with one busy loop per
// CPU at the lowest priority (nice 19), which keeps idle vCPUs from halting
// but yields to any real work. It separates the two costs of a lock-step
// block: the wake-up of an idle CPU for each packet, and the CPU work itself.
//   node bench/awake.mjs [--size-mib N --runs N]
// BENCH_SERVERS narrows or widens the servers (default: emmer/node,tftpd-hpa).
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, median, startServers, stopServers, timedDownload } from "./servers.mjs";

const SIZE = flag("--size-mib", 20) * 1024 * 1024;
const RUNS = flag("--runs", 5);
const BLKSIZES = [512, 1468];

process.env.BENCH_SERVERS ??= "emmer/node,tftpd-hpa";
const { dir, root, sha256: want, remove } = fixture("awake", "file.bin", SIZE);
const servers = await startServers(root);

/** MiB/s of one checked download, NaN if it failed. */
function download(port, blksize) {
  const out = join(dir, "out.bin");
  return SIZE / 1024 / 1024 / timedDownload("curl", clientArgs.curlGet(port, blksize, out), out, want);
}

/** Median MiB/s per server and blksize, in alternating order. */
function measure() {
  const got = new Map();
  for (const blksize of BLKSIZES) {
    for (const { server } of alternating(servers, RUNS)) {
      const key = `${server.name} ${blksize}`;
      if (!got.has(key)) got.set(key, []);
      got.get(key).push(download(server.port, blksize));
    }
  }
  return new Map([...got].map(([k, xs]) => [k, median(xs)]));
}

// A busy loop that also ends by itself once its parent (this script, whose PID it is given) is
// gone, or after 20 minutes.
const SPIN = `const parent = Number(process.argv[1]), end = Date.now() + 1_200_000;
for (let i = 1; ; i++) if (i % 1e7 === 0 && (process.ppid !== parent || Date.now() > end)) process.exit(0);`;

let idle, awake;
const spinners = [];
try {
  idle = measure();
  // One spinner per CPU, each stopped by its PID below.
  for (let i = 0; i < availableParallelism(); i++) {
    const s = spawn("nice", ["-n", "19", process.execPath, "-e", SPIN, String(process.pid)], { stdio: "ignore" });
    s.on("error", () => {}); // no `nice`: reported below rather than thrown from an event
    spinners.push(s);
  }
  await new Promise((r) => setTimeout(r, 300));
  if (spinners.some((s) => s.exitCode !== null || s.pid === undefined)) throw new Error("the busy loops did not start (is `nice` installed?)");
  awake = measure();
} finally {
  for (const s of spinners) s.kill("SIGKILL");
  stopServers(servers);
  remove();
}

const fmt = (x) => (Number.isNaN(x) ? "failed" : x.toFixed(1));
const ratio = (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? "failed" : `${(a / b).toFixed(2)}x`);
const ref = servers.find((s) => s.name === "tftpd-hpa");
console.log(`\nLock-step, curl, ${SIZE / 1024 / 1024} MiB, median of ${RUNS} (MiB/s): idle machine, and with one nice-19 busy loop per CPU\n`);
console.log(`| blksize | server | idle | awake | awake / idle |${ref ? " idle vs tftpd-hpa | awake vs tftpd-hpa |" : ""}`);
console.log(`|---:|---|---:|---:|---:|${ref ? "---:|---:|" : ""}`);
for (const blksize of BLKSIZES) {
  for (const s of servers) {
    const i = idle.get(`${s.name} ${blksize}`);
    const a = awake.get(`${s.name} ${blksize}`);
    let row = `| ${blksize} | ${s.name} | ${fmt(i)} | ${fmt(a)} | ${ratio(a, i)} |`;
    if (ref) row += ` ${ratio(i, idle.get(`tftpd-hpa ${blksize}`))} | ${ratio(a, awake.get(`tftpd-hpa ${blksize}`))} |`;
    console.log(row);
  }
}
