// Boot storm through a kernel load balancer: `clients` curl downloads at once
// (blksize 1468, each from its own client address) of one file through the
// nftables DNAT balancer's virtual address, spread over 1, 2, ... emmer-node
// instances, each in its own network namespace (tests/support/netns.mjs).
// Prints per instance count: wall time, each instance's share (transfers it
// logged as ok) and CPU seconds, and failures (curl exit or wrong sha256).
//   node bench/scaleout.mjs [--clients 200] [--size-mib 4] [--instances 1,2] [--runs 1]
//                           [--mode single-port|default] [--masquerade] [--helper]
//   node bench/scaleout.mjs --study
// --mode single-port (the default): instances run --single-port; --mode default:
// a port per transfer, which needs --helper (the conntrack TFTP helper) behind
// --masquerade (the balancer's address as the instances' client).
// --study: which deployments work with which client: one download per client
// (curl, atftp with windowsize, busybox, tftp-hpa) for each mode, with plain
// DNAT or masquerade, with or without the helper.
// Root only. Every instance, client and balancer shares this machine's cores.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fixture, flag } from "./servers.mjs";
import { createTopology, inNs, netnsUnavailable, pool, served, startInstance, VIP } from "../tests/support/netns.mjs";

const why = netnsUnavailable();
if (why) {
  console.error(`bench/scaleout.mjs: ${why}`);
  process.exit(1);
}

const sha = (path) => {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return "";
  }
};

/** Runs a command in a namespace to its end, killed by PID after `timeoutMs`; resolves with its exit code and output. */
function runIn(ns, cmd, args, timeoutMs) {
  const [c, a] = inNs(ns, cmd, args);
  return new Promise((resolve) => {
    const child = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal ? signal : code, out });
    });
  });
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

async function withSite(options, flags, root, fn) {
  const topo = createTopology(options);
  const instances = [];
  try {
    for (const host of topo.hosts) instances.push(await startInstance(host, { root, port: options.port, flags, timeoutMs: 900_000 }));
    return await fn(topo, instances);
  } finally {
    for (const i of instances) i.stop();
    topo.destroy();
  }
}

async function storm() {
  const CLIENTS = flag("--clients", 200);
  const SIZE = flag("--size-mib", 4) * 1024 * 1024;
  const RUNS = flag("--runs", 1);
  const COUNTS = String(flag("--instances", "1,2")).split(",").map(Number);
  const MODE = flag("--mode", "single-port");
  if (!["single-port", "default"].includes(MODE)) throw new Error(`--mode single-port or default, not ${MODE}`);
  const masquerade = process.argv.includes("--masquerade");
  const helper = process.argv.includes("--helper");
  if (CLIENTS > 240) throw new Error("--clients: at most 240 (one client address each in 198.51.100.10-249)");
  const { dir, root, sha256: want, remove } = fixture("scaleout", "kernel.img", SIZE);
  const site = (n) => ({ instances: n, masquerade, helper, clientAddresses: CLIENTS });
  // --verbose: each line tells its retransmissions.
  const flags = MODE === "default" ? ["--verbose"] : ["--single-port", "--verbose"];
  const rows = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const n of COUNTS) {
        const row = await withSite(site(n), flags, root, async (topo, instances) => {
          const cpu0 = instances.map((i) => cpuSeconds(i.child.pid));
          const t0 = process.hrtime.bigint();
          const ok = await pool(Array.from({ length: CLIENTS }, (_, j) => j), CLIENTS, async (j) => {
            const out = join(dir, `out-${j}`);
            const args = ["-s", "--interface", topo.clientAddresses[j], "--tftp-blksize", "1468", "--max-time", "300", "-o", out, `tftp://${VIP}/kernel.img`];
            const r = await runIn(topo.clients, "curl", args, 310_000);
            const good = r.code === 0 && sha(out) === want;
            rmSync(out, { force: true });
            return good;
          });
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          await new Promise((r) => setTimeout(r, 200)); // the last log lines
          const cpu = instances.map((i, k) => cpuSeconds(i.child.pid) - cpu0[k]);
          const retransmits = instances.map((i) => i.lines.reduce((sum, l) => sum + Number(/ retransmits=(\d+)/.exec(l)?.[1] ?? 0), 0));
          return { n, seconds, failed: ok.filter((x) => !x).length, shares: instances.map((i) => served(i.lines, "kernel.img")), cpu, retransmits };
        });
        rows.push(row);
        console.log(`${n} instance(s): ${row.seconds.toFixed(2)} s, shares ${row.shares.join("/")}, ${row.failed} failed, retransmits ${row.retransmits.join("/")}`);
      }
    }
  } finally {
    remove();
  }
  const cores = spawnSync("nproc", { encoding: "utf8" }).stdout.trim();
  console.log(`\nBoot storm through an nftables DNAT balancer (numgen random): ${CLIENTS} curl clients at once, each from its own address, blksize 1468, ${SIZE / 1024 / 1024} MiB each; mode ${MODE}${masquerade ? ", masquerade" : ""}${helper ? ", conntrack TFTP helper" : ""}; ${cores} cores shared by clients, balancer and instances\n`);
  console.log("| instances | wall time (s) | per-instance share (transfers) | per-instance CPU (s) | retransmissions (timeouts) | failed |");
  console.log("|---:|---:|---|---|---|---:|");
  for (const r of rows) console.log(`| ${r.n} | ${r.seconds.toFixed(2)} | ${r.shares.join(" / ")} | ${r.cpu.map((c) => c.toFixed(1)).join(" / ")} | ${r.retransmits.join(" / ")} | ${r.failed} |`);
}

// Each client's download of one file through VIP; `ok`, or what it printed.
const CLIENT_RUNS = {
  curl: (out) => ["curl", ["-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o", out, `tftp://${VIP}/kernel.img`]],
  "atftp windowsize 8": (out) => ["atftp", ["-g", "-r", "kernel.img", "-l", out, "--option", "blksize 1468", "--option", "windowsize 8", VIP, "69"]],
  busybox: (out) => ["busybox", ["tftp", "-g", "-r", "kernel.img", "-l", out, "-b", "1468", VIP, "69"]],
  "tftp-hpa": (out) => ["tftp", ["-l", "-m", "octet", VIP, "69", "-c", "get", "kernel.img", out]],
};

async function study() {
  const { dir, root, sha256: want, remove } = fixture("scaleout-study", "kernel.img", 1024 * 1024);
  const results = [];
  try {
    for (const single of [true, false]) {
      for (const masquerade of [false, true]) {
        for (const helper of [false, true]) {
          const name = `${single ? "--single-port" : "default mode"}, DNAT${masquerade ? " + masquerade" : ""}${helper ? " + TFTP helper" : ""}`;
          const row = await withSite({ instances: 2, masquerade, helper }, single ? ["--single-port"] : [], root, async (topo) => {
            const cells = {};
            for (const [client, make] of Object.entries(CLIENT_RUNS)) {
              const out = join(dir, "out");
              rmSync(out, { force: true });
              const [cmd, args] = make(out);
              const t0 = process.hrtime.bigint();
              const r = await runIn(topo.clients, cmd, args, 40_000);
              const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
              // tftp-hpa exits 0 after an ERROR or a timeout: its output tells.
              const quiet = !/Error code|timed out|timeout|error/i.test(r.out);
              cells[client] = r.code === 0 && quiet && sha(out) === want ? `ok ${seconds.toFixed(1)} s` : `FAIL ${seconds.toFixed(0)} s (${r.code}: ${r.out.replace(/\s+/g, " ").trim().slice(0, 40)})`;
            }
            return cells;
          });
          results.push([name, row]);
          console.log(name, JSON.stringify(row));
        }
      }
    }
  } finally {
    remove();
  }
  console.log("\nOne 1 MiB download per client through VIP:69, 2 instances\n");
  console.log(`| deployment | ${Object.keys(CLIENT_RUNS).join(" | ")} |`);
  console.log(`|---|${Object.keys(CLIENT_RUNS).map(() => "---").join("|")}|`);
  for (const [name, row] of results) console.log(`| ${name} | ${Object.values(row).join(" | ")} |`);
}

if (process.argv.includes("--study")) await study();
else await storm();
