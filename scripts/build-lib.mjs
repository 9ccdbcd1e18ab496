// Compiles the library (mod.ts and what it imports) to ESM JavaScript and .d.ts
// declarations in dist/lib/, the package's entry for Node, bundlers and
// TypeScript (package.json "exports"). Runs on `npm ci` and `npm pack` (prepare).
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist", "lib"), { recursive: true, force: true }); // no file of a removed source lingers
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (r.status !== 0) {
  console.error("dist/lib: tsc failed");
  process.exit(1);
}
console.log("dist/lib built");
