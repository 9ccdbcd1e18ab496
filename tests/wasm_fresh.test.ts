// core/codec_wasm.ts must be exactly what assembly/ compiles to today.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

test("core/codec_wasm.ts is a fresh build of assembly/", () => {
  const r = spawnSync(process.execPath, [join(repo, "scripts", "build-wasm.mjs"), "--check"], { encoding: "utf8", timeout: 120_000 });
  assert.is(r.status, 0, r.stderr + r.stdout);
});

test.run();
