// Runs every tests/**/*.test.ts file in its own process, on Node (through tsx),
// Deno and Bun (both from the npm devDependencies), and ends with one line:
// "N passed, N failed" over all of them (the skipped count comes on the line
// before it: a skipped test is neither). Each runtime runs twice: with the batch
// datagram path where the machine has one, and without it (node-plain, deno-plain,
// bun-plain).
//   node tests/run.mjs [--runtimes node,deno,bun] [filter...]
// Filters keep the files whose path contains one of them. A file that crashes
// or exits non-zero without uvu's summary counts as one failure. Tooling checks
// (type check, WASM freshness) are about the sources, not a runtime: Node only.
// So are files that only drive the bundled CLI (NODE_ONLY), and the boot tests
// (tests/boot/): firmware in QEMU against the emmer-node bundle, which runs on
// Node whatever runtime runs the test file.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const rtFlag = args.indexOf("--runtimes");
// node-plain, deno-plain, bun-plain: the batch datagram path off (EMMER_NATIVE=off), the path of a machine without an FFI.
const runtimes = rtFlag >= 0 ? args.splice(rtFlag, 2)[1].split(",") : ["node", "node-plain", "deno", "deno-plain", "bun", "bun-plain"];
const filters = args;
const TOOLING = ["typecheck.test.ts", "wasm_fresh.test.ts", "deno_tooling.test.ts", "consumers.test.ts", "readme.test.ts"];
const NODE_ONLY = [...TOOLING, "scaleout.test.ts", "client_cli.test.ts"];
const nodeOnly = (file) => NODE_ONLY.some((x) => file.endsWith(x)) || relative(root, file).startsWith(join("tests", "boot", ""));

const bin = (name) => join(root, "node_modules", ".bin", name);
const COMMANDS = {
  node: [process.execPath, join(root, "node_modules", "tsx", "dist", "cli.mjs")],
  "node-plain": [process.execPath, join(root, "node_modules", "tsx", "dist", "cli.mjs")],
  deno: [bin("deno"), "run", "-A"],
  "deno-plain": [bin("deno"), "run", "-A"],
  bun: [bin("bun"), "run"],
  "bun-plain": [bin("bun"), "run"],
};

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

// Filters match the path inside the repository: a checkout folder named like a filter must not match every file.
const files = find(join(root, "tests")).filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));

const PLAIN = ["node-plain", "deno-plain", "bun-plain"];
const ENV = Object.fromEntries(PLAIN.map((rt) => [rt, { ...process.env, EMMER_NATIVE: "off" }]));
// Not run again without the batch path: checks of the sources or the package, whose result does not
// depend on it; and the batch path's own tests (native_datagrams), which need it on.
const onceOnly = (file) =>
  TOOLING.some((x) => file.endsWith(x)) || file.endsWith("scaleout.test.ts") || file.endsWith("native_datagrams.test.ts") ||
  relative(root, file).startsWith(join("tests", "boot", ""));

function run(cmd, file, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd[0], [...cmd.slice(1), file], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on("data", (d) => process.stderr.write(d));
    child.on("error", (e) => resolve({ code: -1, out: String(e) }));
    child.on("close", (code) => resolve({ code, out }));
  });
}

const totals = {};
for (const rt of runtimes) {
  const t = (totals[rt] = { passed: 0, failed: 0, skipped: 0 });
  const cmd = COMMANDS[rt];
  if (!cmd) {
    console.log(`# unknown runtime ${rt}: counted as 1 failure`);
    t.failed++;
    continue;
  }
  if (!existsSync(cmd[0])) {
    console.log(`# ${rt}: ${cmd[0]} is missing (npm ci installs it): counted as 1 failure`);
    t.failed++;
    continue;
  }
  for (const file of files) {
    if ((PLAIN.includes(rt) && onceOnly(file)) || (rt !== "node" && rt !== "node-plain" && nodeOnly(file))) continue;
    const name = relative(root, file);
    console.log(`\n# [${rt}] ${name}`);
    const { code, out } = await run(cmd, file, ENV[rt]);
    // deno-lint-ignore no-control-regex -- ANSI colour codes begin with ESC
    const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
    const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
    const ok = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
    const skip = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    if (Number.isNaN(total) || Number.isNaN(ok)) {
      console.log(`# [${rt}] ${name}: no uvu summary (exit ${code}): counted as 1 failure`);
      t.failed++;
      continue;
    }
    t.passed += ok;
    t.skipped += skip;
    // uvu counts skipped tests outside Total
    const bad = Math.max(0, total - ok);
    t.failed += bad;
    if (bad === 0 && code !== 0) {
      console.log(`# [${rt}] ${name}: exited ${code} after its tests: counted as 1 failure`);
      t.failed++;
    }
  }
}

console.log("");
const all = { passed: 0, failed: 0, skipped: 0 };
for (const [rt, t] of Object.entries(totals)) {
  console.log(`${rt}: ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
  for (const k of Object.keys(all)) all[k] += t[k];
}
console.log(`${all.skipped} skipped`);
console.log(`${all.passed} passed, ${all.failed} failed`);
process.exit(all.failed > 0 || files.length === 0 ? 1 : 0);
