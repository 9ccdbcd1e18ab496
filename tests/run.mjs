// Runs every tests/**/*.test.ts file in its own process (uvu through tsx) and
// ends with one line: "N passed, N failed, N skipped".
//   node tests/run.mjs [filter...]    only files whose path contains a filter
// A file that crashes or exits non-zero without uvu's summary counts as one failure.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const filters = process.argv.slice(2);

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const files = find(join(root, "tests")).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs");
let passed = 0;
let failed = 0;
let skipped = 0;

function run(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [tsx, file], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on("data", (d) => process.stderr.write(d));
    child.on("close", (code) => resolve({ code, out }));
  });
}

for (const file of files) {
  const name = relative(root, file);
  console.log(`\n# ${name}`);
  const { code, out } = await run(file);
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    console.log(`# ${name}: no uvu summary (exit ${code}): counted as 1 failure`);
    failed++;
    continue;
  }
  passed += ok;
  skipped += skip;
  const bad = total - ok - skip;
  failed += bad;
  if (bad === 0 && code !== 0) {
    console.log(`# ${name}: exited ${code} after its tests: counted as 1 failure`);
    failed++;
  }
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
