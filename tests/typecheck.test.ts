// The whole project type-checks under strict TypeScript.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");

test("tsc --noEmit passes (strict)", () => {
  const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(repo, "tsconfig.json")], { encoding: "utf8", timeout: 300_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
});

test.run();
