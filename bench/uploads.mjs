// Uploads: a 100 MiB put with atftp (blksize 1468) to each server that takes
// uploads, median of 3, the stored file checked by sha256.
//   node bench/uploads.mjs [--size-mib N --runs N]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { alternating, clientArgs, fixture, flag, has, median, peakMiB, startServers, stopServers } from "./servers.mjs";

const SIZE = flag("--size-mib", 100) * 1024 * 1024;
const RUNS = flag("--runs", 3);
const { root, path: local, sha256: want, remove } = fixture("uploads", "upload.bin", SIZE, { inRoot: false });

if (!has("atftp")) {
  console.log("atftp: missing (apt-get install atftp)");
  process.exit(0);
}
const servers = await startServers(root, { extra: ["--write"], write: true });
const times = Object.fromEntries(servers.map((s) => [s.name, []]));
for (const { run: i, server: s } of alternating(servers, RUNS)) {
  const name = `up-${s.port}-${i}.bin`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync("atftp", clientArgs.atftpPut(s.port, name, local), { timeout: 300_000 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const stored = join(root, name);
  const ok = r.status === 0 && existsSync(stored) && createHash("sha256").update(readFileSync(stored)).digest("hex") === want;
  times[s.name].push(ok ? seconds : NaN);
  rmSync(stored, { force: true });
}
const peaks = Object.fromEntries(servers.map((s) => [s.name, peakMiB(s.child.pid)]));
stopServers(servers);
remove();
console.log(`\nUploads: ${SIZE / 1024 / 1024} MiB with atftp -p, blksize 1468, median of ${RUNS} (MiB/s)\n`);
console.log("| server | MiB/s | peak memory (MiB) |");
console.log("|---|---:|---:|");
for (const s of servers) {
  const m = median(times[s.name]);
  console.log(`| ${s.name} | ${Number.isNaN(m) ? "failed" : (SIZE / 1024 / 1024 / m).toFixed(1)} | ${peaks[s.name].toFixed(1)} |`);
}
