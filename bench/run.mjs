// Throughput of Emmer on Node, Deno and Bun against real TFTP servers
// (tftpd-hpa, atftpd), side by side in one run.
//   npm run bench [-- --size-mib N --runs N --only TEXT]
// Each scenario runs the same client against each server, alternating the
// order, `runs` times; every download is checked by sha256; the table shows
// medians and the ratio of each Emmer to the best peer server. Peak memory is
// each server process's VmHWM (peak resident set) from /proc at the end.
// tftpd-hpa forks a process per transfer: its figure is the listening parent's.
// Peers that are missing are reported as missing.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SIZE = Number(arg("--size-mib", "100")) * 1024 * 1024;
const RUNS = Number(arg("--runs", "3"));
const ONLY = arg("--only", "");

const dir = mkdtempSync(join(tmpdir(), "emmer-bench-"));
const root = join(dir, "root");
mkdirSync(root);
const file = join(root, "file.bin");
{
  const buf = Buffer.allocUnsafe(SIZE);
  randomFillSync(buf);
  writeFileSync(file, buf);
}
const want = createHash("sha256").update(readFileSync(file)).digest("hex");
const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const bin = (name) => join(repo, "node_modules", ".bin", name);

// ---- servers ----------------------------------------------------------------
const candidates = [
  { name: "emmer/node", emmer: true, cmd: process.execPath, args: (p) => [join(repo, "dist", "emmer-node.js"), "--root", root, "--port", p] },
  { name: "emmer/deno", emmer: true, cmd: bin("deno"), args: (p) => ["run", "-A", "--config", join(repo, "deno.json"), join(repo, "serve.ts"), "--root", root, "--port", p] },
  { name: "emmer/bun", emmer: true, cmd: bin("bun"), args: (p) => ["run", join(repo, "serve.ts"), "--root", root, "--port", p] },
  { name: "tftpd-hpa", cmd: "/usr/sbin/in.tftpd", args: (p) => ["-L", "-u", "root", "-s", root, "-a", `127.0.0.1:${p}`] },
  {
    name: "atftpd",
    cmd: join(repo, "bench", ".peers", "atftpd", "usr", "sbin", "atftpd"),
    args: (p) => ["--daemon", "--no-fork", "--port", p, "--bind-address", "127.0.0.1", "--user", "root", "--group", "root", "--logfile", "/dev/null", root],
    hint: "bash bench/install-atftpd.sh",
  },
];
if (!existsSync(join(repo, "dist", "emmer-node.js"))) spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit" });

const servers = [];
let port = 16900;
for (const c of candidates) {
  if (!existsSync(c.cmd)) {
    console.log(`${c.name}: missing (${c.hint ?? c.cmd})`);
    continue;
  }
  const p = String(++port);
  const child = spawn(c.cmd, c.args(p), { stdio: ["ignore", "ignore", "ignore"] });
  servers.push({ ...c, port: p, child });
}
await new Promise((r) => setTimeout(r, 2500));

// ---- clients ----------------------------------------------------------------
function check(out) {
  if (!existsSync(out) || statSync(out).size !== SIZE) return false;
  return createHash("sha256").update(readFileSync(out)).digest("hex") === want;
}

function timed(cmd, args, out) {
  rmSync(out, { force: true });
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { timeout: 300_000, encoding: "utf8" });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0 || !check(out)) return NaN; // failed or wrong bytes: no figure
  return s;
}

const scenarios = [];
for (const blksize of [512, 1468, 65464]) {
  scenarios.push({
    name: `curl, blksize ${blksize}`,
    client: "curl",
    run: (p, out) => timed("curl", ["-s", "--tftp-blksize", String(blksize), "-o", out, `tftp://127.0.0.1:${p}/file.bin`], out),
  });
}
for (const windowsize of [16, 64]) {
  scenarios.push({
    name: `atftp, blksize 1468, windowsize ${windowsize}`,
    client: "atftp",
    windowed: true,
    run: (p, out) =>
      timed("atftp", ["-g", "-r", "file.bin", "-l", out, "--option", "blksize 1468", "--option", `windowsize ${windowsize}`, "127.0.0.1", p], out),
  });
}

const rows = [];
for (const sc of scenarios) {
  if (ONLY && !sc.name.includes(ONLY)) continue;
  if (!has(sc.client)) {
    console.log(`${sc.name}: client ${sc.client} missing`);
    continue;
  }
  // tftpd-hpa has no windowsize: a windowed client would measure lock-step there.
  const targets = servers.filter((s) => !(sc.windowed && s.name === "tftpd-hpa"));
  const times = Object.fromEntries(targets.map((s) => [s.name, []]));
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    for (const s of order) times[s.name].push(sc.run(s.port, join(dir, "out.bin")));
  }
  const median = (xs) => {
    const ok = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    return ok.length === xs.length ? ok[Math.floor(ok.length / 2)] : NaN;
  };
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
const peak = (pid) => {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
  } catch {
    return NaN;
  }
};
console.log(`\npeak memory (VmHWM): ${servers.map((s) => `${s.name} ${peak(s.child.pid).toFixed(1)} MiB`).join(", ")}`);
for (const s of servers) s.child.kill("SIGTERM");
rmSync(dir, { recursive: true, force: true });
