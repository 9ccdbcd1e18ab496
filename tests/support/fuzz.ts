/**
 * The fuzzer: random and mutated datagrams to a live Emmer's listening port and
 * to the ports of its live transfers, while valid transfers run alongside. The
 * valid clients speak from 127.0.0.1 through a pass-through proxy (which tells
 * the transfer ports); the fuzzer speaks from 127.0.0.2, a stranger to every
 * transfer. Used by tests/fuzz.test.ts (short) and scripts/fuzz.ts (long).
 */
import process from "node:process";
import { createHash } from "node:crypto";
import { loadRuntime } from "../../adapters/runtime.ts";
import { arenaInUse } from "../../core/arena.ts";
import { Emmer, TftpClient } from "../../mod.ts";
import { startProxy } from "./lossy_proxy.ts";
import { packetAt, rng } from "./random_packets.ts";
import { bytesOf } from "./session_driver.ts";

export interface FuzzReport {
  datagrams: number;
  /** Datagrams per second asked for. */
  rate: number;
  toListeningPort: number;
  toTransferPorts: number;
  answers: number;
  validTransfers: number;
  validFailures: string[];
  unhandledRejections: number;
  /** Linear memory still handed out, and live transfers, once it is all over (both should be 0). */
  arenaInUseAfter: number;
  sessionsAfter: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  seconds: number;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const mib = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;

/**
 * `rate`: datagrams per second. The fuzzer shares the server's process and
 * event loop, so an unpaced flood measures only how many datagrams the kernel
 * drops; 10,000 a second leaves the server room to answer everyone.
 */
export async function runFuzz(options: { datagrams: number; seed: number; rate?: number; log?: (line: string) => void }): Promise<FuzzReport> {
  const { datagrams, seed } = options;
  const rate = options.rate ?? 10_000;
  const log = options.log ?? (() => {});
  let unhandled = 0;
  const onUnhandled = () => unhandled++;
  process.on("unhandledRejection", onUnhandled);
  const runtime = await loadRuntime();
  const files = new Map<string, Uint8Array>();
  const app = new Emmer({ port: 0, timeout: 0.2, retries: 5, maxSessions: 2000, maxRequestsPerSecond: 1000, drainTimeout: 300, onError: () => {} });
  app.read("*", ({ filename }) => files.get(filename) ?? bytesOf(filename.length * 97 % 3000, filename.length));
  app.write("*", async ({ body }) => void (await new Response(body).arrayBuffer()));
  await app.listen();
  const server = app.address!.port;
  const proxy = await startProxy(server, { loss: 0, duplicate: 0, reorder: 0, maxDelayMs: 0, seed });
  const client = new TftpClient("127.0.0.1", proxy.port, { timeoutMs: 200, retries: 8 });

  let answers = 0;
  const fuzzer = await runtime.bind("127.0.0.2", 0, () => answers++);
  const report: FuzzReport = {
    datagrams: 0, rate, toListeningPort: 0, toTransferPorts: 0, answers: 0, validTransfers: 0, validFailures: [],
    unhandledRejections: 0, arenaInUseAfter: 0, sessionsAfter: 0, rssBeforeMiB: mib(process.memoryUsage().rss), rssPeakMiB: 0, rssAfterMiB: 0, seconds: 0,
  };
  const started = runtime.now();

  // Valid transfers, one after another with a few in parallel, until the fuzzing is done.
  let fuzzing = true;
  let n = 0;
  async function valid(lane: number) {
    const r = rng(seed + 1000 + lane);
    while (fuzzing) {
      const i = n++;
      const name = `valid-${lane}-${i}`;
      const body = bytesOf(Math.floor(r() * 200_000), seed + i);
      const opts = { blksize: r() < 0.5 ? 512 : 1468, windowsize: r() < 0.5 ? 1 : 8, tsize: true };
      try {
        if (r() < 0.7) {
          files.set(name, body);
          const got = await client.get(name, opts);
          if (sha(got.data) !== sha(body)) report.validFailures.push(`${name}: wrong bytes`);
          files.delete(name);
        } else await client.put(name, body, opts);
        report.validTransfers++;
      } catch (e) {
        report.validFailures.push(`${name}: ${(e as Error).message}`);
      }
    }
  }
  const lanes = [0, 1, 2].map(valid);

  // The fuzz: in bursts of BURST, paced to `rate`, yielding to the event loop in between.
  const BURST = 100;
  for (let i = 0; i < datagrams; i++) {
    const bytes = packetAt(seed, i);
    const ports = [...proxy.serverPorts];
    const toTransfer = ports.length > 0 && (i & 1) === 1;
    const port = toTransfer ? ports[i % ports.length] : server;
    fuzzer.send(bytes, port, "127.0.0.1", () => {});
    if (toTransfer) report.toTransferPorts++;
    else report.toListeningPort++;
    report.datagrams++;
    if (i % BURST === BURST - 1) {
      const due = started + ((i + 1) / rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - runtime.now())));
      if (proxy.serverPorts.size > 64) proxy.serverPorts.clear(); // keep aiming at recent transfers
      // Bun's collector runs late: without a hint the peak counts the fuzzer's own garbage
      // (176-214 MiB over five runs of the same seed), which the memory bound is not about.
      (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(false);
      report.rssPeakMiB = Math.max(report.rssPeakMiB, mib(process.memoryUsage().rss));
      if (i % 100_000 === BURST - 1) log(`  ${i + 1} datagrams, ${report.validTransfers} valid transfers, rss ${mib(process.memoryUsage().rss)} MiB`);
    }
  }
  fuzzing = false;
  await Promise.all(lanes);
  // Let the sessions the fuzz opened (spoofed requests that nobody answers) time out.
  for (let i = 0; i < 50 && app.engine!.load > 0; i++) await new Promise((r) => setTimeout(r, 100));
  report.sessionsAfter = app.engine!.load;
  report.arenaInUseAfter = arenaInUse();
  fuzzer.close();
  proxy.close();
  await app.close();
  process.off("unhandledRejection", onUnhandled);
  report.answers = answers;
  report.unhandledRejections = unhandled;
  report.rssAfterMiB = mib(process.memoryUsage().rss);
  report.rssPeakMiB = Math.max(report.rssPeakMiB, report.rssAfterMiB);
  report.seconds = Math.round((runtime.now() - started) / 100) / 10;
  return report;
}
