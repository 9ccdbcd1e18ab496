// README.md against the code it describes: the command line's help as printed,
// and every constructor option in the options table. Runs on Node only.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const readme = readFileSync(join(repo, "README.md"), "utf8");

test("the command-line section shows exactly what emmer-node --help prints", () => {
  const tsx = join(repo, "node_modules", "tsx", "dist", "cli.mjs");
  const r = spawnSync(process.execPath, [tsx, join(repo, "serve.ts"), "--help"], { encoding: "utf8", timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  const block = /## The command line\n\n```\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no code block under ## The command line");
  assert.fixture(block![1], r.stdout);
});

test("the options table lists every EmmerOptions field", () => {
  const source = readFileSync(join(repo, "drivers", "app.ts"), "utf8");
  const body = /export interface EmmerOptions \{([\s\S]*?)\n\}/.exec(source)![1];
  const fields = [...body.matchAll(/^\s+(\w+)\?:/gm)].map((m) => m[1]);
  assert.ok(fields.length >= 10, `found ${fields.length} fields`);
  const table = /### Options[^\n]*\n([\s\S]*?)\n\n/.exec(readme)![1];
  for (const f of fields) assert.ok(table.includes(`| \`${f}\` |`), `${f} is not in the options table`);
});

test.run();
