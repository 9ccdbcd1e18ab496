// The package as its users get it, each in a fresh project outside the
// repository: `npm pack` once, then `npm install <tarball> --offline` (it has no
// dependencies) into a new temporary folder per consumer, or for Deno an import
// of the repository's mod.ts by path. Every consumer serves a real download.
// Nothing in a consumer is configured beyond what README.md tells users to do.
// Runs on Node only (tests/run.mjs TOOLING): the consumers pick their runtime.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { TftpClient } from "../mod.ts";
import { get, hasPeer } from "./support/peers.ts";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name: string) => join(repo, "node_modules", ".bin", name);
const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
const { version } = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
const made: string[] = [];
let tarball = "";

function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): SpawnSyncReturns<string> & { all: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000, env: { ...process.env, NO_COLOR: "1", ...env } });
  return { ...r, all: `${r.stdout}${r.stderr}${r.error ?? ""}` };
}

/** A new folder outside the repository, removed after the suite. */
function fresh(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `emmer-consumer-${name}-`));
  made.push(dir);
  return dir;
}

/** A new npm project (`type` as README.md says for TypeScript) with the packed tarball installed, offline. */
function npmProject(name: string, pkg: Record<string, unknown> = {}): string {
  const dir = fresh(name);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `consumer-${name}`, private: true, ...pkg }, null, 2));
  const r = sh("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], dir);
  assert.is(r.status, 0, r.all);
  return dir;
}

test.before(() => {
  const out = fresh("pack");
  // npm pack runs `prepare` (the build) first, as a publish would.
  const r = sh("npm", ["pack", "--json", "--pack-destination", out], repo);
  assert.is(r.status, 0, r.all);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf("[")));
  tarball = join(out, info.filename);
});

test.after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

test("the tarball holds the library (JS, .d.ts, sources), the CLI, README and LICENSE; no tests, benches, scripts or CI files", () => {
  const r = sh("tar", ["-tzf", tarball], repo);
  assert.is(r.status, 0, r.all);
  const files = r.stdout.trim().split("\n").map((f) => f.replace(/^package\//, ""));
  for (const f of ["package.json", "README.md", "LICENSE", "dist/emmer-node.js", "dist/lib/mod.js", "dist/lib/mod.d.ts", "dist/lib/core/codec_wasm.js", "mod.ts", "serve.ts", "cli/client.ts"]) {
    assert.ok(files.includes(f), `${f} is missing from the tarball`);
  }
  for (const f of files) {
    assert.match(f, /^(package\.json|README\.md|LICENSE|mod\.ts|serve\.ts|version\.ts|(cli|core|drivers|adapters)\/(native\/)?\w+\.ts|dist\/emmer-node\.js|dist\/lib\/[\w/]+\.(js|d\.ts))$/, `${f} is in the tarball`);
  }
});

test("Node, plain ESM (.mjs): import from \"emmer-node\" serves a download to a real client; the emmer-node command is installed", async () => {
  const dir = npmProject("node-esm");
  writeFileSync(
    join(dir, "app.mjs"),
    `import { Emmer, VERSION } from "emmer-node";
const app = new Emmer({ port: 0 });
app.read(/^hello\\/(?<name>\\w+)$/, ({ params, address }) => \`hello \${params.name} from \${address}\\n\`);
await app.listen();
console.log("listening", app.address.port, VERSION);
`,
  );
  const child: ChildProcess = spawn(process.execPath, ["app.mjs"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  try {
    let out = "";
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on("data", (d) => {
        out += d;
        const m = /listening (\d+) (\S+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.stderr!.on("data", (d) => (out += d));
      child.on("exit", (code) => reject(new Error(`app.mjs exited ${code}: ${out}`)));
    });
    assert.match(out, new RegExp(`listening \\d+ ${version.replace(/\./g, "\\.")}`));
    if (hasPeer("curl")) {
      const local = join(dir, "got.txt");
      const r = await get("curl", { host: "127.0.0.1", port, remote: "hello/node", local, timeoutMs: 15_000 });
      assert.is(r.code, 0, r.stderr);
      assert.is(readFileSync(local, "utf8"), "hello node from 127.0.0.1\n");
    } else {
      assert.ok(process.env.CI !== "true", "curl is needed");
      const got = await new TftpClient("127.0.0.1", port, { timeoutMs: 1000 }).get("hello/node");
      assert.is(new TextDecoder().decode(got.data), "hello node from 127.0.0.1\n");
    }
  } finally {
    child.kill("SIGKILL");
  }
  const cli = sh(join(dir, "node_modules", ".bin", "emmer-node"), ["--version"], dir);
  assert.is(cli.stdout, `emmer-node ${version}\n`, cli.all);
});

const TS_APP = `import { Emmer, TftpClient, TftpError, type TransferEvent } from "emmer-node";

const events: TransferEvent[] = [];
const app = new Emmer({ hostname: "127.0.0.1", port: 0, onTransfer: (e) => events.push(e) });
app.read(/^hello\\/(?<name>\\w+)$/, ({ params }) => \`hello \${params["name"] ?? "?"}\\n\`);
app.read("secret", () => {
  throw new TftpError(2, "no");
});
await app.listen();
const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 1000 });
const got = await client.get("hello/ts", { blksize: 1024 });
const refused = await client.get("secret").then(() => "served", (e: unknown) => (e instanceof TftpError ? \`ERROR \${e.code}\` : String(e)));
await app.close();
console.log(new TextDecoder().decode(got.data).trim(), refused, events.map((e) => e.outcome).join(","));
`;

test("TypeScript: a strict `tsc --init` project type-checks with 0 errors, compiles and runs; with @types/node and full lib checks too", () => {
  // README: an ES module project ("type": "module"), as tsc --init's nodenext settings expect.
  const dir = npmProject("ts", { type: "module" });
  const init = sh(process.execPath, [tsc, "--init"], dir);
  assert.is(init.status, 0, init.all);
  const config = readFileSync(join(dir, "tsconfig.json"), "utf8");
  assert.match(config, /"strict": true/);
  assert.match(config, /"exactOptionalPropertyTypes": true/);
  assert.match(config, /"noUncheckedIndexedAccess": true/);
  writeFileSync(join(dir, "index.ts"), TS_APP);
  const build = sh(process.execPath, [tsc], dir);
  assert.is(build.status, 0, build.all);
  assert.is(build.all.trim(), "");
  const run = sh(process.execPath, ["index.js"], dir);
  assert.is(run.status, 0, run.all);
  assert.is(run.stdout, "hello ts ERROR 2 ok,failed\n");
  // The usual Node setup, as `npm install -D @types/node` leaves it (copied from the repository's
  // node_modules: no network), with the declarations of every package checked (skipLibCheck off).
  for (const pkg of ["@types/node", "undici-types"]) cpSync(join(repo, "node_modules", pkg), join(dir, "node_modules", pkg), { recursive: true });
  writeFileSync(join(dir, "tsconfig.json"), config.replace(/"types": \[\]/, '"types": ["node"]'));
  const strict = sh(process.execPath, [tsc, "--skipLibCheck", "false"], dir);
  assert.is(strict.status, 0, strict.all);
});

test("Bun: import from \"emmer-node\" runs the TypeScript sources (the bun condition) and serves", () => {
  const dir = npmProject("bun");
  writeFileSync(
    join(dir, "app.ts"),
    `import { Emmer, TftpClient } from "emmer-node";
const app = new Emmer({ port: 0 });
app.read("x", ({ address }) => \`bun \${address}\\n\`);
await app.listen();
const got = await new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 1000 }).get("x");
await app.close();
console.log(new TextDecoder().decode(got.data).trim(), import.meta.resolve("emmer-node"));
`,
  );
  const r = sh(bin("bun"), ["run", "app.ts"], dir);
  assert.is(r.status, 0, r.all);
  assert.match(r.stdout, /^bun 127\.0\.0\.1 file:\/\/.*\/node_modules\/emmer-node\/mod\.ts\n$/);
});

test("Deno, npm package: import from \"emmer-node\" runs the compiled JavaScript and serves", () => {
  const dir = npmProject("deno-npm");
  writeFileSync(
    join(dir, "app.ts"),
    `import { Emmer, TftpClient } from "emmer-node";
const app = new Emmer({ port: 0 });
app.read("x", ({ address }) => \`deno \${address}\\n\`);
await app.listen();
const got = await new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 1000 }).get("x");
await app.close();
console.log(new TextDecoder().decode(got.data).trim(), import.meta.resolve("emmer-node"));
`,
  );
  const env = { DENO_DIR: join(dir, ".deno") };
  const check = sh(bin("deno"), ["check", "app.ts"], dir, env);
  assert.is(check.status, 0, check.all);
  const r = sh(bin("deno"), ["run", "-A", "app.ts"], dir, env);
  assert.is(r.status, 0, r.all);
  assert.match(r.stdout, /^deno 127\.0\.0\.1 file:\/\/.*\/node_modules\/emmer-node\/dist\/lib\/mod\.js\n$/);
});

test("Deno, by path: a project whose file imports the repository's mod.ts passes deno check and deno test", () => {
  const dir = fresh("deno-path");
  const mod = pathToFileURL(join(repo, "mod.ts")).href;
  writeFileSync(
    join(dir, "app_test.ts"),
    `import { Emmer, TftpClient, type TransferEvent } from "${mod}";

Deno.test("serves a route", async () => {
  const events: TransferEvent[] = [];
  const app = new Emmer({ port: 0, onTransfer: (e) => events.push(e) });
  app.read(/^greeting\\/(?<name>\\w+)$/, ({ params }) => \`hello \${params.name}\\n\`);
  await app.listen();
  try {
    const got = await new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 1000 }).get("greeting/deno");
    if (new TextDecoder().decode(got.data) !== "hello deno\\n") throw new Error("wrong bytes");
  } finally {
    await app.close();
  }
  if (events.length !== 1 || events[0].outcome !== "ok") throw new Error(JSON.stringify(events));
});
`,
  );
  const env = { DENO_DIR: join(dir, ".deno") };
  const check = sh(bin("deno"), ["check", "app_test.ts"], dir, env);
  assert.is(check.status, 0, check.all);
  for (const flags of [["-A"], ["-A", "--unstable-net"]]) {
    const r = sh(bin("deno"), ["test", ...flags, "app_test.ts"], dir, env);
    assert.is(r.status, 0, r.all);
    assert.match(r.all, /ok \| 1 passed \| 0 failed/);
  }
});

test.run();
