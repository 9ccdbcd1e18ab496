// The codec's share of the server's CPU in scenarios 1 and 2: Emmer on Node
// (serve.ts through tsx, so that each frame names its source file) runs under
// `node --cpu-prof` while curl (lock-step, blksize 512 and 1468) and atftp
// (blksize 1468, windowsize 16) download a file; then the profile's samples are
// split into idle, the codec (core/codec.ts and the WebAssembly it calls) and the rest.
//   node bench/profile.mjs [--size-mib N]
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { clientArgs, fixture, has, repo } from "./servers.mjs";

const i = process.argv.indexOf("--size-mib");
const SIZE = (i > 0 ? Number(process.argv[i + 1]) : 50) * 1024 * 1024;
const { dir, root, remove } = fixture("profile", "file.bin", SIZE);

const scenarios = [
  ["curl, blksize 512", "curl", (p, out) => clientArgs.curlGet(p, 512, out)],
  ["curl, blksize 1468", "curl", (p, out) => clientArgs.curlGet(p, 1468, out)],
  ["atftp, blksize 1468, windowsize 16", "atftp", (p, out) => clientArgs.atftpGet(p, out, 16)],
];

/**
 * Self time per category from a .cpuprofile, counting only the samples taken
 * while the client ran (`from`..`to`, µs on the monotonic clock that V8's
 * profiles and process.hrtime share): idle, codec, everything else.
 */
function split(profile, from, to) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const t = { idle: 0, codec: 0, other: 0 };
  let at = profile.startTime;
  profile.samples.forEach((id, k) => {
    const dt = profile.timeDeltas[k] ?? 0;
    at += dt;
    if (at < from || at > to) return; // start-up (compiling) and shutdown are not the transfer
    const { functionName, url } = byId.get(id).callFrame;
    if (functionName === "(idle)") t.idle += dt;
    else if (url.endsWith("/core/codec.ts") || url.endsWith("/core/codec_wasm.ts") || url.startsWith("wasm://")) t.codec += dt;
    else t.other += dt;
  });
  return t;
}

let port = 17500;
console.log(`Codec share of Emmer's CPU on Node, ${SIZE / 1024 / 1024} MiB download (node --cpu-prof)\n`);
console.log("| scenario | server busy | codec, of busy time |");
console.log("|---|---:|---:|");
for (const [name, client, args] of scenarios) {
  if (!has(client)) {
    console.log(`| ${name} | client ${client} missing | |`);
    continue;
  }
  const profDir = join(dir, `prof-${++port}`);
  const server = spawn(process.execPath, ["--cpu-prof", "--cpu-prof-interval", "100", "--cpu-prof-dir", profDir, "--import", "tsx", join(repo, "serve.ts"), "--root", root, "--port", String(port)], {
    cwd: repo,
    stdio: "ignore",
  });
  await new Promise((r) => setTimeout(r, 2500));
  const from = Number(process.hrtime.bigint() / 1000n);
  const r = spawnSync(client, args(port, join(dir, "out.bin")), { timeout: 300_000 });
  const to = Number(process.hrtime.bigint() / 1000n);
  server.kill("SIGINT"); // the profile is written on a clean exit
  await new Promise((r) => server.on("exit", r));
  if (r.status !== 0) {
    console.log(`| ${name} | the download failed | |`);
    continue;
  }
  const t = split(JSON.parse(readFileSync(join(profDir, readdirSync(profDir)[0]), "utf8")), from, to);
  const busy = t.codec + t.other;
  console.log(`| ${name} | ${((100 * busy) / (busy + t.idle)).toFixed(1)}% | ${((100 * t.codec) / busy).toFixed(2)}% |`);
}
remove();
