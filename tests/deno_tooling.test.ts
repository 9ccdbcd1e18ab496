// Deno's tools on the sources, with the deno from npm ci (node_modules/.bin/deno):
// lint and type check clean, and a JSR publish (dry run, without network) that
// carries the library and nothing else. Runs on Node only (tests/run.mjs TOOLING).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { VERSION } from "../version.ts";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = join(repo, "node_modules", ".bin", "deno");
const cache = mkdtempSync(join(tmpdir(), "emmer-deno-dir-"));

/**
 * Runs deno in the repository. `offline`: in a network namespace with no interface up, and with
 * an empty module cache, so nothing it needs can come from a download or an earlier one. Otherwise
 * Deno's own cache (its type-check cache makes a second run quick).
 */
function run(args: string[], offline = false) {
  const argv = offline ? ["unshare", "--user", "--map-root-user", "--net", deno, ...args] : [deno, ...args];
  const env = { ...process.env, NO_COLOR: "1", ...(offline ? { DENO_DIR: cache } : {}) };
  const r = spawnSync(argv[0], argv.slice(1), { cwd: repo, encoding: "utf8", timeout: 120_000, env });
  return { ...r, all: `${r.stdout}${r.stderr}` };
}

test.after(() => rmSync(cache, { recursive: true, force: true }));

test("deno lint: no problems in any file", () => {
  const r = run(["lint"]);
  assert.is(r.status, 0, r.all);
  assert.match(r.all, /Checked \d+ files/);
});

test("deno check: every TypeScript source (library, CLI, tests, scripts, benches) type-checks", () => {
  // assembly/ is AssemblyScript (i32, @inline), checked by its own compiler (npm run check:wasm).
  const r = run(["check", "mod.ts", "serve.ts", "version.ts", "cli", "core", "drivers", "adapters", "tests", "scripts", "bench"]);
  assert.is(r.status, 0, r.all);
});

test("versions agree: package.json, deno.json and version.ts (emmer-node --version)", () => {
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
  const jsr = JSON.parse(readFileSync(join(repo, "deno.json"), "utf8"));
  assert.equal([pkg.version, jsr.version], [VERSION, VERSION]);
  assert.equal([pkg.license, jsr.license], ["MIT", "MIT"]);
});

test("deno publish --dry-run (JSR): passes without network and publishes the library only", () => {
  const offline = spawnSync("unshare", ["--user", "--map-root-user", "--net", "true"]).status === 0;
  assert.ok(offline || process.env.CI !== "true", "unshare is needed to run it without network");
  // --allow-dirty: the suite runs on work not yet committed too.
  const r = run(["publish", "--dry-run", "--allow-dirty"], offline);
  assert.is(r.status, 0, r.all);
  assert.match(r.all, /Simulating publish of @emmer\/emmer@/);
  const files = [...r.all.matchAll(/^\s+file:\/\/(\S+)/gm)].map((m) => m[1].slice(repo.length + 1)).sort();
  for (const f of ["LICENSE", "README.md", "deno.json", "mod.ts", "serve.ts", "version.ts", "cli/client.ts", "core/endpoint.ts", "core/codec_wasm.ts", "adapters/node.ts"]) {
    assert.ok(files.includes(f), `${f} is not published: ${files.join(" ")}`);
  }
  for (const f of files) assert.match(f, /^(LICENSE|README\.md|deno\.json|mod\.ts|serve\.ts|version\.ts|(cli|core|drivers|adapters)\/(native\/)?\w+\.ts)$/, `published: ${f}`);
});

test.run();
