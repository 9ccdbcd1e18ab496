// Lock-step with the machine kept awake: curl downloads from Emmer on Node and
// tftpd-hpa, first on an otherwise idle machine, then with one busy loop per
// CPU at the lowest priority (nice 19), which keeps idle vCPUs from halting
// but yields to any real work. It separates the two costs of a lock-step
// block: the wake-up of an idle CPU for each packet, and the CPU work itself.
//   node bench/awake.mjs [--size-mib N --runs N]
// BENCH_SERVERS narrows or widens the servers (default: emmer/node,tftpd-hpa).
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { alternating, clientArgs, fixture, startServers, stopServers } from "./servers.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SIZE = arg("--size-mib", 20) * 1024 * 1024;
const RUNS = arg("--runs", 5);
const BLKSIZES = [512, 1468];

process.env.BENCH_SERVERS ??= "emmer/node,tftpd-hpa";
const { dir, root, sha256: want, remove } = fixture("awake", "file.bin", SIZE);
const servers = await startServers(root);

/** MiB/s of one checked download, NaN if it failed. */
function download(port, blksize) {
  const out = join(dir, "out.bin");
  const t0 = process.hrtime.bigint();
  const r = spawnSync("curl", clientArgs.curlGet(port, blksize, out), { stdio: "ignore" });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const ok = r.status === 0 && createHash("sha256").update(readFileSync(out)).digest("hex") === want;
  rmSync(out, { force: true });
  return ok ? SIZE / 1024 / 1024 / seconds : NaN;
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
  const median = (xs) => (xs.some(Number.isNaN) ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
  return new Map([...got].map(([k, xs]) => [k, median(xs)]));
}

const idle = measure();
// One spinner per CPU, each stopped by its PID below.
const spinners = Array.from({ length: availableParallelism() }, () =>
  spawn("nice", ["-n", "19", process.execPath, "-e", "for (;;) {}"], { stdio: "ignore" })
);
await new Promise((r) => setTimeout(r, 300));
let awake;
try {
  awake = measure();
} finally {
  for (const s of spinners) s.kill("SIGKILL");
}
stopServers(servers);
remove();

const fmt = (x) => (Number.isNaN(x) ? "failed" : x.toFixed(1));
const ref = servers.find((s) => s.name === "tftpd-hpa");
console.log(`\nLock-step, curl, ${SIZE / 1024 / 1024} MiB, median of ${RUNS} (MiB/s): idle machine, and with one nice-19 busy loop per CPU\n`);
console.log(`| blksize | server | idle | awake | awake / idle |${ref ? " idle vs tftpd-hpa | awake vs tftpd-hpa |" : ""}`);
console.log(`|---:|---|---:|---:|---:|${ref ? "---:|---:|" : ""}`);
for (const blksize of BLKSIZES) {
  for (const s of servers) {
    const i = idle.get(`${s.name} ${blksize}`);
    const a = awake.get(`${s.name} ${blksize}`);
    let row = `| ${blksize} | ${s.name} | ${fmt(i)} | ${fmt(a)} | ${(a / i).toFixed(2)}x |`;
    if (ref) row += ` ${(i / idle.get(`tftpd-hpa ${blksize}`)).toFixed(2)}x | ${(a / awake.get(`tftpd-hpa ${blksize}`)).toFixed(2)}x |`;
    console.log(row);
  }
}
