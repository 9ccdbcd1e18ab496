// Bundles serve.ts into dist/emmer-node.js, the `emmer-node` command (npm's bin).
// Runs on `npm ci` (the prepare script), so a fresh clone is ready to serve.
import { build } from "esbuild";
import { chmodSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist", "emmer-node.js");
await build({
  entryPoints: [join(root, "serve.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  banner: { js: "#!/usr/bin/env node" },
  legalComments: "none",
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
console.log("dist/emmer-node.js built");
