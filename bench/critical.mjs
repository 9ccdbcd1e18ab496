// The critical path of a lock-step block, inside each server: from the moment
// the kernel hands the server the client's ACK (a receive system call returns)
// to the moment the server asks the kernel to send the next DATA (a send
// system call begins), and how long that send call takes (on loopback it
// carries the datagram into the client's socket and wakes the client). Both
// are on the round trip of every block; the rest is the client and wake-ups.
// Measured with `perf record` on syscall tracepoints, which cost nothing for
// the system calls that are not traced, during a curl download.
//   node bench/critical.mjs [--size-mib N]
// BENCH_SERVERS narrows or widens the servers (default: Emmer on each runtime, tftpd-hpa, atftpd).
import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { clientArgs, fixture, flag, has, startServers, stopServers, timedDownload } from "./servers.mjs";

const SIZE = flag("--size-mib", 20) * 1024 * 1024;
const BLKSIZES = [512, 1468];
// Every receive and send flavour the servers use: recvmsg/sendmsg (libuv), recvfrom/sendto
// (tftpd-hpa, tokio), recvmmsg/sendmmsg (Bun).
const EVENTS = ["syscalls:sys_exit_recv*", "syscalls:sys_enter_send*", "syscalls:sys_exit_send*"];

if (!has("perf") || !has("curl")) {
  console.log("critical path: skipped (perf or curl missing; bash bench/install.sh installs perf)");
  process.exit(0);
}

process.env.BENCH_SERVERS ??= "emmer/node,emmer/deno,emmer/bun,tftpd-hpa,atftpd";
const { dir, root, sha256: want, remove } = fixture("critical", "file.bin", SIZE);
const servers = await startServers(root);

/** The q-quantile of a list (0.5: the median, 0.9: the 90th percentile); NaN for none. */
const quantile = (xs, q) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)] : NaN);

/**
 * One traced download: the receive-to-send gaps and send durations (µs) of
 * the server's process (its threads and forked children: perf follows them).
 */
async function traced(server, blksize) {
  const data = join(dir, "perf.data");
  const rec = spawn("perf", ["record", "-q", "-p", String(server.child.pid), ...EVENTS.flatMap((e) => ["-e", e]), "-o", data], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 1000)); // attached before the first packet
  const out = join(dir, "out.bin");
  const seconds = timedDownload("curl", clientArgs.curlGet(server.port, blksize, out), out, want);
  rec.kill("SIGINT");
  await new Promise((r) => rec.once("exit", r));
  const script = spawnSync("perf", ["script", "--ns", "-i", data, "-F", "pid,time,event,trace"], { encoding: "utf8", maxBuffer: 1 << 30 });
  rmSync(data, { force: true });
  const gaps = [];
  const sends = [];
  let received = NaN; // when the last successful receive returned
  let sending = NaN; // when the send under way began
  for (const line of script.stdout.split("\n")) {
    const m = /^\s*\d+\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(recv|send)\w*:\s*(\S*)/.exec(line);
    if (!m) continue;
    const t = Number(m[1]) * 1e6;
    if (m[3] === "recv") {
      // A datagram, not an error: perf prints the return value as unsigned hex (EAGAIN is 0xff...f5).
      if (m[2] === "exit" && /^0x[0-9a-f]+$/.test(m[4]) && BigInt.asIntN(64, BigInt(m[4])) > 0n) received = t;
    } else if (m[2] === "enter") {
      if (!Number.isNaN(received)) gaps.push(t - received);
      received = NaN;
      sending = t;
    } else if (!Number.isNaN(sending)) {
      sends.push(t - sending);
      sending = NaN;
    }
  }
  return { seconds, gaps, sends, blocks: Math.ceil(SIZE / blksize) };
}

const rows = [];
try {
  for (const blksize of BLKSIZES) {
    for (const server of servers) {
      const r = await traced(server, blksize);
      rows.push({ server: server.name, blksize, ...r });
    }
  }
} finally {
  stopServers(servers);
  remove();
}

const us = (x) => (Number.isNaN(x) ? "-" : x.toFixed(1));
console.log(`\nThe server's part of a lock-step round trip: curl, ${SIZE / 1024 / 1024} MiB, perf on syscall tracepoints (µs)\n`);
console.log("| blksize | server | wall per block | ACK in to DATA out: median | p90 | send call: median | p90 |");
console.log("|---:|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const wall = Number.isNaN(r.seconds) ? "failed" : ((r.seconds * 1e6) / r.blocks).toFixed(1);
  console.log(`| ${r.blksize} | ${r.server} | ${wall} | ${us(quantile(r.gaps, 0.5))} | ${us(quantile(r.gaps, 0.9))} | ${us(quantile(r.sends, 0.5))} | ${us(quantile(r.sends, 0.9))} |`);
}
console.log("\n(Wall per block includes perf's own cost; compare the servers, not against the untraced runs.)");
