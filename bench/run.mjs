// Throughput of Emmer on Node, Deno and Bun against real TFTP servers
// (tftpd-hpa, atftpd, the npm tftp package), side by side in one run.
//   node bench/run.mjs [--size-mib N --runs N --only TEXT]
// Each scenario runs the same client against each server, alternating the
// order, `runs` times; every download is checked by sha256; the table shows
// medians and the ratio of each Emmer to the best peer server. Peak memory is
// each server process's VmHWM (peak resident set) from /proc at the end.
// tftpd-hpa forks a process per transfer: its figure is the listening parent's.
// Peers that are missing are reported as missing.
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, peakMiB, serversFor, startServers, stopServers, timedDownload } from "./servers.mjs";

const SIZE = flag("--size-mib", 100) * 1024 * 1024;
const RUNS = flag("--runs", 3);
const ONLY = flag("--only", "");

const { dir, root, sha256: want, remove } = fixture("bench", "file.bin", SIZE);

// ---- servers ----------------------------------------------------------------
const servers = await startServers(root);

const scenarios = [];
for (const blksize of [512, 1468, 65464]) {
  scenarios.push({
    name: `curl, blksize ${blksize}`,
    client: "curl",
    run: (p, out) => timedDownload("curl", clientArgs.curlGet(p, blksize, out), out, want),
  });
}
for (const windowsize of [16, 64]) {
  scenarios.push({
    name: `atftp, blksize 1468, windowsize ${windowsize}`,
    client: "atftp",
    windowed: true,
    run: (p, out) => timedDownload("atftp", clientArgs.atftpGet(p, out, windowsize), out, want),
  });
}

const rows = [];
for (const sc of scenarios) {
  if (ONLY && !sc.name.includes(ONLY)) continue;
  if (!has(sc.client)) {
    console.log(`${sc.name}: client ${sc.client} missing`);
    continue;
  }
  const targets = serversFor(sc, servers);
  const times = Object.fromEntries(targets.map((s) => [s.name, []]));
  for (const { server: s } of alternating(targets, RUNS)) times[s.name].push(sc.run(s.port, join(dir, "out.bin")));
  const mibs = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, SIZE / 1024 / 1024 / median(v)]));
  rows.push({ scenario: sc.name, mibs });
  console.log(sc.name, Object.entries(mibs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", "));
}

const names = servers.map((s) => s.name);
const emmers = servers.filter((s) => s.emmer).map((s) => s.name);
const peers = servers.filter((s) => !s.emmer).map((s) => s.name);
const fmt = (v) => (v === undefined ? "-" : Number.isNaN(v) ? "failed" : v.toFixed(1));
console.log(`\n${SIZE / 1024 / 1024} MiB file on loopback, median of ${RUNS} runs, MiB/s (ratios: Emmer / best peer server)\n`);
console.log(`| scenario | ${names.join(" | ")} | ${emmers.map((n) => `${n} / best peer`).join(" | ")} |`);
console.log(`|---|${names.map(() => "---:").join("|")}|${emmers.map(() => "---:").join("|")}|`);
for (const r of rows) {
  const best = Math.max(...peers.map((p) => r.mibs[p]).filter((v) => v !== undefined && !Number.isNaN(v)));
  const ratios = emmers.map((e) => (Number.isFinite(best) && best > 0 ? (r.mibs[e] / best).toFixed(2) + "x" : "-"));
  console.log(`| ${r.scenario} | ${names.map((n) => fmt(r.mibs[n])).join(" | ")} | ${ratios.join(" | ")} |`);
}
console.log(`\npeak memory (VmHWM): ${servers.map((s) => `${s.name} ${peakMiB(s.child.pid).toFixed(1)} MiB`).join(", ")}`);
stopServers(servers);
remove();
