// README.md against the code it describes: the command line's help as printed,
// every constructor option in the options table, and the defaults it states (and
// EmmerOptions' comments state) against core/settings.ts. Runs on Node only.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type NumberSetting, type Setting, type SettingName, SETTINGS } from "../core/settings.ts";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const readme = readFileSync(join(repo, "README.md"), "utf8");
const settings = Object.entries(SETTINGS) as [SettingName, Setting][];

/** The body of `export interface EmmerOptions`, wherever in core/ it is declared. */
function emmerOptions(): string {
  for (const name of ["core", "drivers"].flatMap((d) => readdirSync(join(repo, d)).filter((n) => n.endsWith(".ts")).map((n) => join(d, n)))) {
    const m = /export interface EmmerOptions \{([\s\S]*?)\n\}/.exec(readFileSync(join(repo, name), "utf8"));
    if (m) return m[1];
  }
  throw new Error("no `export interface EmmerOptions` in core/ or drivers/");
}

/** The options table's rows: option name to its default cell. */
function optionRows(): Map<string, string> {
  const table = /### Options[^\n]*\n([\s\S]*?)\n\n/.exec(readme)![1];
  return new Map([...table.matchAll(/^\| `(\w+)` \| ([^|]*) \|/gm)].map((m) => [m[1], m[2]]));
}

test("the command-line section shows exactly what emmer-node --help prints", () => {
  const tsx = join(repo, "node_modules", "tsx", "dist", "cli.mjs");
  const r = spawnSync(process.execPath, [tsx, join(repo, "serve.ts"), "--help"], { encoding: "utf8", timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  const block = /## The command line\n\n```\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no code block under ## The command line");
  assert.fixture(block![1], r.stdout);
});

test("the options table lists every EmmerOptions field", () => {
  const body = emmerOptions();
  const fields = [...body.matchAll(/^\s+(\w+)\?:/gm)].map((m) => m[1]);
  assert.ok(fields.length >= 10, `found ${fields.length} fields`);
  const table = /### Options[^\n]*\n([\s\S]*?)\n\n/.exec(readme)![1];
  for (const f of fields) assert.ok(table.includes(`| \`${f}\` |`), `${f} is not in the options table`);
});

test("the options table's defaults are core/settings.ts's", () => {
  const rows = optionRows();
  for (const [name, s] of settings) {
    const cell = rows.get(name);
    assert.ok(cell !== undefined, `${name} is not in the options table`);
    if ("default" in s) assert.ok(cell.startsWith(`\`${JSON.stringify(s.default)}\``), `${name}: the table says ${cell}, core/settings.ts ${JSON.stringify(s.default)}`);
    else assert.is(cell.replaceAll("`", ""), s.otherwise, name);
  }
});

/** A default as prose writes it: 30 s, 5000 ms, 1 GiB, or the number. */
function spoken(s: NumberSetting): string[] {
  const forms = [String(s.default)];
  if (s.unit === "s" || s.unit === "ms") forms.push(`${s.default} ${s.unit}`);
  if (s.unit === "bytes") {
    for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
      if (s.default % size === 0) forms.push(`${s.default / size} ${unit}`);
    }
  }
  return forms;
}

test("defaults the README's prose gives in parentheses after an option's name are core/settings.ts's", () => {
  const numbers = new Map(settings.filter((e): e is [SettingName, NumberSetting] => "default" in e[1] && typeof e[1].default === "number"));
  const said = [...readme.matchAll(/`(\w+)`[^`(\n]{0,30}\(([0-9][^;)]*)[;)]/g)].filter((m) => numbers.has(m[1] as SettingName));
  assert.ok(said.length >= 4, `${said.length} defaults found in the prose`);
  for (const [, name, value] of said) {
    const forms = spoken(numbers.get(name as SettingName)!);
    assert.ok(forms.includes(value.trim()), `the README says ${name} (${value}), core/settings.ts ${forms.join(" or ")}`);
  }
});

test("EmmerOptions' comments give core/settings.ts's defaults and ranges", () => {
  const body = emmerOptions();
  for (const [name, s] of settings) {
    const m = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*${name}\\?:`).exec(body);
    assert.ok(m, `${name}: no comment`);
    const doc = m![1].replace(/\s*\n\s*\*\s*/g, " ");
    if ("default" in s) assert.ok(doc.includes(`Default ${JSON.stringify(s.default)}`), `${name}: "${doc.trim()}" does not say Default ${JSON.stringify(s.default)}`);
    const stated = /Default: (.*?)\.(?:\s|$)/.exec(doc);
    if (stated && !("default" in s)) assert.is(stated[1], s.otherwise, name);
    const range = /\b([0-9]+)\.\.([0-9]+)\b/.exec(doc);
    if (range && "min" in s) assert.equal([Number(range[1]), Number(range[2])], [s.min, s.max], `${name}: ${range[0]}`);
  }
});

test.run();
