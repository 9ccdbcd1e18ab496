// Memory per stalled session: 10,000 read requests from 10,000 source ports,
// then silence; the server's resident memory before and after, per session.
//   node bench/stalled.mjs [--sessions N] [--single-port] [--later 10,15,25]
// --later: the server's RSS again at those seconds after the burst (the sessions still
// live: --timeout 30), split into anonymous and file-backed (the runtime's code) pages.
// Emmer only: tftpd-hpa and atftpd fork or thread per transfer (10,000
// processes or threads), which this machine should not be asked for.
import dgram from "node:dgram";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flag, rssMiB, startServers } from "./servers.mjs";

const i = process.argv.indexOf("--sessions");
const SESSIONS = i > 0 ? Number(process.argv[i + 1]) : 10_000;
// Every transfer on the listening socket: no socket (and no receive buffer) per session.
const SINGLE = process.argv.includes("--single-port");
const LATER = flag("--later", "").split(",").filter(Boolean).map(Number);
/** "RSS r MiB (anonymous a, file-backed f)" of one process, from /proc. */
function split(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024;
  return `RSS ${kib("VmRSS").toFixed(1)} MiB (anonymous ${kib("RssAnon").toFixed(1)}, file-backed ${kib("RssFile").toFixed(1)})`;
}
const dir = mkdtempSync(join(tmpdir(), "emmer-stalled-"));
const root = join(dir, "root");
mkdirSync(root);
writeFileSync(join(root, "kernel.img"), Buffer.alloc(4 * 1024 * 1024, 7));

// Long timeouts keep the sessions alive while they are counted; limits above the test.
// Deno runs as `deno run -A serve.ts` does, without V8 flags. For a comparison, the same with the young
// generation capped at 4 MiB per semi-space is a row on request:
//   BENCH_SERVERS="emmer/deno,emmer/deno --v8-flags=--max-semi-space-size=4" node bench/stalled.mjs
const servers = (await startServers(root, {
  extra: ["--timeout", "30", "--max-sessions", "100000", "--max-requests-per-second", "1000000", ...(SINGLE ? ["--single-port"] : [])],
  emmerOnly: true,
  denoV8Flags: "--max-semi-space-size=4",
}));
const request = Buffer.from("\0\x01kernel.img\0octet\0", "latin1");
const rows = [];
for (const s of servers) {
  const before = rssMiB(s.child.pid);
  const sockets = [];
  let answered = 0;
  const errors = new Map();
  for (let n = 0; n < SESSIONS; n++) {
    const sock = dgram.createSocket("udp4");
    let first = true;
    sock.on("message", (m) => {
      // the first DATA arrives (and its copies); nobody answers it
      if (first && m[1] === 3) (first = false, answered++);
      if (m[1] === 5) errors.set(m.subarray(4, -1).toString(), (errors.get(m.subarray(4, -1).toString()) ?? 0) + 1);
    });
    sock.bind(0, "127.0.0.1", () => sock.send(request, Number(s.port), "127.0.0.1"));
    sockets.push(sock);
    if (n % 100 === 99) await new Promise((r) => setTimeout(r, 100)); // 1,000 requests a second
  }
  await new Promise((r) => setTimeout(r, 5000));
  const after = rssMiB(s.child.pid);
  if (LATER.length) console.log(`${s.name}: 5 s after the burst: ${split(s.child.pid)}`);
  for (let i = 0, at = 5; i < LATER.length; at = LATER[i++]) {
    await new Promise((r) => setTimeout(r, (LATER[i] - at) * 1000));
    console.log(`${s.name}: ${LATER[i]} s after the burst: ${split(s.child.pid)}`);
  }
  for (const sock of sockets) sock.close();
  // Its 10,000 sessions hold 10,000 ports for minutes (and a graceful stop drains
  // for 5 s): end it now, or the next server's run would find the ephemeral port
  // range nearly used up.
  s.child.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 1000));
  rows.push({ name: s.name, before, after, answered, perSession: ((after - before) * 1024 * 1024) / SESSIONS });
  console.log(`${s.name}: ${before.toFixed(1)} -> ${after.toFixed(1)} MiB, ${answered} sessions answered with DATA 1; errors ${JSON.stringify([...errors])}`);
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${SESSIONS} stalled sessions (RRQ, then silence)${SINGLE ? ", single-port mode" : ""}\n`);
console.log("| server | sessions answered | RSS before (MiB) | RSS with the sessions (MiB) | bytes per session |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) console.log(`| ${r.name} | ${r.answered} | ${r.before.toFixed(1)} | ${r.after.toFixed(1)} | ${Math.round(r.perSession)} |`);
