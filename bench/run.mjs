// Throughput of Emmer against real TFTP servers, side by side in one run.
//   npm run bench [-- --size-mib N --runs N --only NAME]
// Each scenario runs the same client against each server, alternating the
// order, `runs` times; every download is checked by sha256; the table shows
// medians and the ratio Emmer / peer. Peak memory is each server process's
// VmHWM (peak resident set) from /proc at the end.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
const file = join(dir, "root", "file.bin");
spawnSync("mkdir", ["-p", join(dir, "root")]);
{
  const buf = Buffer.allocUnsafe(SIZE);
  randomFillSync(buf);
  writeFileSync(file, buf);
}
const want = createHash("sha256").update(readFileSync(file)).digest("hex");

const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const started = [];

function startServer(name, cmd, args, port) {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  started.push(child);
  return { name, child, port, err: () => err };
}

function peakKiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function sha(path) {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function timeClient(cmd, args, out) {
  rmSync(out, { force: true });
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { timeout: 300_000, encoding: "utf8" });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  if (!existsSync(out) || statSync(out).size !== SIZE || sha(out) !== want) throw new Error(`${cmd}: wrong bytes`);
  return s;
}

const servers = [];
const ports = { emmer: 16901, "tftpd-hpa": 16902, atftpd: 16903 };
const bin = join(repo, "dist", "emmer-node.js");
if (!existsSync(bin)) spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit" });
servers.push(startServer("emmer (node)", process.execPath, [bin, "--root", join(dir, "root"), "--port", String(ports.emmer)], ports.emmer));
if (existsSync("/usr/sbin/in.tftpd")) {
  servers.push(startServer("tftpd-hpa", "/usr/sbin/in.tftpd", ["-L", "-u", "root", "-s", join(dir, "root"), "-a", `127.0.0.1:${ports["tftpd-hpa"]}`], ports["tftpd-hpa"]));
} else console.log("tftpd-hpa: missing (apt-get install tftpd-hpa)");
await new Promise((r) => setTimeout(r, 1000));

const scenarios = [];
if (has("curl")) {
  for (const blksize of [512, 1468, 65464]) {
    scenarios.push({
      name: `curl, blksize ${blksize}`,
      run: (port, out) => timeClient("curl", ["-s", "--tftp-blksize", String(blksize), "-o", out, `tftp://127.0.0.1:${port}/file.bin`], out),
    });
  }
} else console.log("curl: missing");

const rows = [];
for (const sc of scenarios) {
  if (ONLY && !sc.name.includes(ONLY)) continue;
  const times = Object.fromEntries(servers.map((s) => [s.name, []]));
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) times[s.name].push(sc.run(s.port, join(dir, "out.bin")));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mibs = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, SIZE / 1024 / 1024 / median(v)]));
  rows.push({ scenario: sc.name, mibs });
  console.log(sc.name, Object.entries(mibs).map(([k, v]) => `${k} ${v.toFixed(1)} MiB/s`).join(", "));
}

const names = servers.map((s) => s.name);
const emmer = names[0];
console.log(`\n${SIZE / 1024 / 1024} MiB file, loopback, median of ${RUNS} runs (MiB/s)\n`);
console.log(`| scenario | ${names.join(" | ")} | ${names.slice(1).map((n) => `emmer / ${n}`).join(" | ")} |`);
console.log(`|---|${names.map(() => "---:").join("|")}|${names.slice(1).map(() => "---:").join("|")}|`);
for (const r of rows) {
  console.log(
    `| ${r.scenario} | ${names.map((n) => r.mibs[n].toFixed(1)).join(" | ")} | ${names.slice(1).map((n) => (r.mibs[emmer] / r.mibs[n]).toFixed(2) + "x").join(" | ")} |`,
  );
}
console.log(`\npeak memory (VmHWM): ${servers.map((s) => `${s.name} ${(peakKiB(s.child.pid) / 1024).toFixed(1)} MiB`).join(", ")}`);
for (const child of started) child.kill("SIGTERM");
rmSync(dir, { recursive: true, force: true });
