// The client CLI against atftp's client: `emmer-node get` (on Node, Deno and Bun) and
// `atftp -g`, each downloading the same file from atftpd at blksize 1468 and windowsize
// 16, in alternating order, median of the runs; every download checked by sha256. The
// time is the whole command's, start-up included, as a script calling it would see; the
// memory is the client's peak resident size (GNU time's %M, when /usr/bin/time is there).
//   node bench/client.mjs [--size-mib N --runs N]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, repo, startServers, stopServers } from "./servers.mjs";

const SIZE = flag("--size-mib", 100) * 1024 * 1024;
const RUNS = flag("--runs", 5);
const bin = (name) => join(repo, "node_modules", ".bin", name);

const { dir, root, sha256: want, remove } = fixture("client", "file.bin", SIZE);
process.env.BENCH_SERVERS = "atftpd";
const [server] = await startServers(root);
if (!server) {
  remove();
  process.exit(0); // startServers said what is missing (bash bench/install.sh)
}
const url = `tftp://127.0.0.1:${server.port}/file.bin`;
const emmerArgs = (out) => ["get", url, "-o", out, "--blksize", "1468", "--windowsize", "16", "--quiet"];
const clients = [
  { name: "emmer-node get (Node)", cmd: process.execPath, args: (out) => [join(repo, "dist", "emmer-node.js"), ...emmerArgs(out)] },
  { name: "emmer-node get (Deno)", cmd: bin("deno"), args: (out) => ["run", "-A", "--config", join(repo, "deno.json"), join(repo, "serve.ts"), ...emmerArgs(out)] },
  { name: "emmer-node get (Bun)", cmd: bin("bun"), args: (out) => ["run", join(repo, "serve.ts"), ...emmerArgs(out)] },
  ...(has("atftp") ? [{ name: "atftp -g", cmd: "atftp", args: (out) => clientArgs.atftpGet(server.port, out, 16) }] : []),
].filter((c) => c.cmd === "atftp" || existsSync(c.cmd));
if (!has("atftp")) console.log("atftp: missing (apt-get install atftp)");

const TIME = "/usr/bin/time";
const memFile = join(dir, "maxrss");
/** Seconds and peak resident MiB of one download, NaN seconds if it failed or the bytes differ. */
function timed(cmd, args, out) {
  rmSync(out, { force: true });
  const argv = existsSync(TIME) ? [TIME, "-f", "%M", "-o", memFile, cmd, ...args] : [cmd, ...args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { timeout: 300_000, stdio: "ignore" });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const ok = r.status === 0 && existsSync(out) && createHash("sha256").update(readFileSync(out)).digest("hex") === want;
  rmSync(out, { force: true });
  const mib = existsSync(memFile) ? Number(readFileSync(memFile, "utf8").trim().split("\n").pop()) / 1024 : NaN;
  return { seconds: ok ? seconds : NaN, mib };
}

const times = Object.fromEntries(clients.map((c) => [c.name, []]));
const peaks = Object.fromEntries(clients.map((c) => [c.name, 0]));
for (const { run, server: c } of alternating(clients, RUNS)) {
  const out = join(dir, `got-${run}.bin`);
  const { seconds, mib } = timed(c.cmd, c.args(out), out);
  times[c.name].push(seconds);
  peaks[c.name] = Math.max(peaks[c.name], mib);
}
stopServers([server]);
remove();

console.log(`\nClients: a ${SIZE / 1024 / 1024} MiB download from atftpd, blksize 1468, windowsize 16, median of ${RUNS} (whole command, start-up included)\n`);
console.log("| client | MiB/s | seconds | peak memory (MiB) | runs (s) |");
console.log("|---|---:|---:|---:|---|");
for (const c of clients) {
  const m = median(times[c.name]);
  const runs = times[c.name].map((t) => (Number.isNaN(t) ? "failed" : t.toFixed(2))).join(", ");
  console.log(`| ${c.name} | ${Number.isNaN(m) ? "failed" : (SIZE / 1024 / 1024 / m).toFixed(1)} | ${Number.isNaN(m) ? "-" : m.toFixed(2)} | ${Number.isNaN(peaks[c.name]) ? "-" : peaks[c.name].toFixed(1)} | ${runs} |`);
}
