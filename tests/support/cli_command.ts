/**
 * emmer-node as the CLI tests run it: the bundled dist/emmer-node.js on Node,
 * `deno run -A serve.ts` on Deno, `bun run serve.ts` on Bun, same flags.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runtimeName } from "../../adapters/runtime.ts";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const bin = join(repo, "dist", "emmer-node.js");

/** The command line of this runtime, after process.execPath. */
export const command: string[] = {
  node: [bin],
  deno: ["run", "-A", "--config", join(repo, "deno.json"), join(repo, "serve.ts")],
  bun: ["run", join(repo, "serve.ts")],
}[runtimeName()];

/** Builds the bundle on Node (always: a bundle older than serve.ts would test old code); false if it is missing after. */
export function buildCli(): boolean {
  if (runtimeName() === "node") spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit" });
  return runtimeName() !== "node" || existsSync(bin);
}
