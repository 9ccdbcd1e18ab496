// core/ is sans I/O: no clock, timer, microtask, socket or runtime global appears in its code.
// Time comes in as `now`; the drivers (drivers/) own timers and sockets.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const core = join(dirname(fileURLToPath(import.meta.url)), "..", "core");

/** What core must not use, each with why a match is a breach. */
const BANNED: [RegExp, string][] = [
  [/\bset(Timeout|Interval|Immediate)\s*\(/, "a timer"],
  [/\bclear(Timeout|Interval|Immediate)\s*\(/, "a timer"],
  [/\bqueueMicrotask\b/, "a microtask"],
  [/\bperformance\s*\./, "a clock"],
  [/\bDate\s*\.\s*now\b|\bnew\s+Date\b/, "a clock"],
  [/\b(Deno|Bun|process)\s*[.[]/, "a runtime global"],
  [/\bglobalThis\b/, "a runtime global"],
  [/\brequire\s*\(/, "a runtime's module loader"],
  [/\b(fetch|WebSocket|XMLHttpRequest)\s*\(/, "network I/O"],
  [/\b(dgram|createSocket|listenDatagram|udpSocket)\b/, "a socket"],
];

/** Module specifiers core must not import: a runtime's modules, or code outside core/. */
const BANNED_IMPORTS: [RegExp, string][] = [
  [/\b(from|import)\s*\(?\s*["'](node|bun|deno|npm|jsr):/, "a runtime module"],
  [/\b(from|import)\s*\(?\s*["']\.\.\//, "an import from outside core/ (adapters, drivers)"],
];

function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:\\])\/\/.*$/gm, "$1");
}

/** The code alone: comments and string contents removed (a message may say "process"). */
function codeOf(source: string): string {
  return withoutComments(source)
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, '""')
    .replace(/`(?:[^`\\]|\\.)*`/g, "``");
}

/**
 * Bare specifiers ("koffi", "lodash"): a package that core would need installed. Read from import
 * and export statements only (no parenthesis before their `from`: a string that says `from "x"` in
 * a function is no import), and from dynamic imports.
 */
function bareImports(source: string): string[] {
  const specifiers = [
    ...source.matchAll(/^\s*(?:import|export)\b[^;()]*?\bfrom\s*["']([^"']+)["']/gm),
    ...source.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ...source.matchAll(/\bimport\s*\(\s*["']([^"']+)["']/g),
  ].map((m) => m[1]);
  return specifiers.filter((spec) => !/^\.\.?\//.test(spec) && !/^(node|bun|deno|npm|jsr):/.test(spec)).map((spec) => `a bare import ("${spec}")`);
}

function breaches(source: string): string[] {
  const code = codeOf(source);
  const imports = withoutComments(source);
  return [
    ...[...BANNED.filter(([re]) => re.test(code)), ...BANNED_IMPORTS.filter(([re]) => re.test(imports))].map(([re, why]) => `${why} (${re.source})`),
    ...bareImports(imports),
  ];
}

test("the check finds each kind of breach, and not words in comments or strings", () => {
  assert.ok(breaches("const t = setTimeout(f, 1);").length > 0);
  assert.ok(breaches("queueMicrotask(f);").length > 0);
  assert.ok(breaches("const n = performance.now();").length > 0);
  assert.ok(breaches("const n = Date.now();").length > 0);
  assert.ok(breaches("if (Deno.build) {}").length > 0);
  assert.ok(breaches('import { x } from "node:dgram";').length > 0);
  assert.ok(breaches('import { y } from "../adapters/node.ts";').length > 0);
  assert.ok(breaches('import koffi from "koffi";').length > 0);
  assert.ok(breaches('import type { A, B } from "some-package";').length > 0);
  assert.ok(breaches('const m = await import("lodash");').length > 0);
  assert.equal(breaches('import { z } from "./codec.ts";\nexport { w } from "./packet.ts";'), []);
  // A message that reads like an import is not one (core/machine.ts).
  assert.equal(breaches('export class E extends Error {\n  constructor(from: string) {\n    super(`no transition from "${from}"`);\n  }\n}'), []);
  assert.equal(breaches('// setTimeout(f) is not used\nconst m = "process.exit";'), []);
});

const files = readdirSync(core).filter((f) => f.endsWith(".ts"));

test("core/ has the files the check reads", () => {
  assert.ok(files.includes("endpoint.ts") && files.includes("session.ts") && files.includes("exchange.ts"), files.join(", "));
});

for (const file of files) {
  test(`core/${file}: no clock, timer, microtask, socket, runtime global or bare import`, () => {
    assert.equal(breaches(readFileSync(join(core, file), "utf8")), [], `core/${file}`);
  });
}

test.run();
