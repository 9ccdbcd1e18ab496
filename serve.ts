/**
 * The command line: serves a folder over TFTP.
 *
 *   npx emmer-node [flags]            (this file bundled to dist/emmer-node.js)
 *   deno run -A serve.ts [flags]
 *   bun run serve.ts [flags]
 *
 * @module
 */
import process from "node:process";
import { stat } from "node:fs/promises";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { Emmer, serveDir, type TransferEvent } from "./mod.ts";
import { runtimeName } from "./adapters/runtime.ts";

const USAGE = `Usage: emmer-node [flags]

Serves the files of a folder over TFTP (read-only unless --write).

  --root DIR            folder to serve (default: the current folder)
  --host ADDR           address to listen on (default: 127.0.0.1; 0.0.0.0 or :: for all)
  --port N              UDP port (default: 3942; TFTP's standard port is 69)
  --write               accept uploads: create and replace files under the root
  --max-blksize N       largest blksize granted, 8..65464 (default: 65464)
  --max-windowsize N    largest windowsize granted, 1..65535 (default: 64)
  --timeout S           retransmission timeout in seconds, 1..255 (default: 1)
  --retries N           retransmissions before a transfer is given up, 0..100 (default: 5)
  --max-sessions N      concurrent transfers; beyond, requests go unanswered (default: 1000)
  --max-requests-per-second N
                        new requests per client address per second (default: 100)
  --single-port         answer every transfer from the listening port (NAT, containers)
  --workers N           processes sharing the port, 1..64 (default: 1; Node only): more cores
                        for boot storms; limits above then apply per worker
  --verbose             log options, retransmissions and handler errors in full
  --help                show this help
`;

interface Flags {
  root: string;
  host: string;
  port: number;
  write: boolean;
  maxBlksize: number;
  maxWindowsize: number;
  timeout: number;
  retries: number;
  maxSessions: number;
  maxRequestsPerSecond: number;
  singlePort: boolean;
  verbose: boolean;
  workers: number;
}

class UsageError extends Error {}

const NUMERIC: Record<string, [keyof Flags, number, number]> = {
  "--port": ["port", 0, 65535],
  "--max-blksize": ["maxBlksize", 8, 65464],
  "--max-windowsize": ["maxWindowsize", 1, 65535],
  "--timeout": ["timeout", 1, 255],
  "--retries": ["retries", 0, 100],
  "--max-sessions": ["maxSessions", 1, 1_000_000],
  "--max-requests-per-second": ["maxRequestsPerSecond", 1, 1_000_000],
  "--workers": ["workers", 1, 64],
};

function parseFlags(args: string[]): Flags | "help" {
  const flags: Flags = {
    root: ".",
    host: "127.0.0.1",
    port: 3942,
    write: false,
    maxBlksize: 65464,
    maxWindowsize: 64,
    timeout: 1,
    retries: 5,
    maxSessions: 1000,
    maxRequestsPerSecond: 100,
    singlePort: false,
    verbose: false,
    workers: 1,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined || v === "") throw new UsageError(`${name} needs a value`);
      return v;
    };
    const bare = () => {
      if (inline !== undefined) throw new UsageError(`${name} takes no value`);
    };
    if (name === "--help" || name === "-h") return "help";
    else if (name === "--write") (bare(), flags.write = true);
    else if (name === "--verbose") (bare(), flags.verbose = true);
    else if (name === "--single-port") (bare(), flags.singlePort = true);
    else if (name === "--root") flags.root = value();
    else if (name === "--host") {
      flags.host = value();
      // Names are not resolved (which of a name's addresses, and when?): say so rather than fail to bind.
      if (isIP(flags.host) === 0) throw new UsageError(`--host must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, not "${flags.host}"`);
    }
    else if (name in NUMERIC) {
      const [key, min, max] = NUMERIC[name];
      const v = value();
      const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
      if (!(n >= min && n <= max)) throw new UsageError(`${name} must be an integer from ${min} to ${max}, not "${v}"`);
      (flags[key] as number) = n;
    } else throw new UsageError(`unknown flag "${arg}"`);
  }
  if (flags.workers > 1) {
    // Workers share the listening socket through node:cluster (adapters/node_workers.ts).
    if (runtimeName() !== "node") throw new UsageError("--workers needs Node (node:cluster); on Deno and Bun, run one process");
    // node:cluster cannot share a UDP socket between processes on Windows (ENOTSUP).
    if (process.platform === "win32") throw new UsageError("--workers is not available on Windows");
    // A transfer's packets must reach the worker that serves it: its own port does that.
    if (flags.singlePort) throw new UsageError("--single-port needs --workers 1: every worker would answer on the shared port");
    // Each worker would bind a port of its own: clients could reach only one of them.
    if (flags.port === 0) throw new UsageError("--workers needs a fixed --port, not 0");
  }
  return flags;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

function formatEvent(e: TransferEvent, verbose: boolean): string {
  const client = e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
  const outcome = e.outcome === "ok"
    ? "ok"
    : e.dropped !== undefined
    ? `dropped unanswered (${e.error?.message}): ${e.dropped} request(s) since the last such line`
    : `failed: ${e.error?.byPeer ? "client sent" : "sent"} ERROR ${e.error?.code} ${e.error?.message}`;
  let line = `${new Date().toISOString()} ${client} ${e.kind} ${JSON.stringify(e.filename)} ${size(e.bytes)} ${(e.durationMs / 1000).toFixed(3)} s ${outcome}`;
  if (verbose) {
    const rate = e.durationMs > 0 ? `${(e.bytes / 1024 ** 2 / (e.durationMs / 1000)).toFixed(1)} MiB/s` : "-";
    line += ` | ${rate} blksize=${e.blksize} windowsize=${e.windowsize} minBurst=${e.minBurst} retransmits=${e.retransmits} oack=${JSON.stringify(e.options)}`;
  }
  return line;
}

async function main(): Promise<number> {
  // A log pipe that closes (`emmer-node | head`, a logger that died) must not take the server
  // and its live transfers down with an EPIPE: the lines are lost, the transfers are not.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  let flags: Flags | "help";
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`emmer-node: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags === "help") {
    console.log(USAGE);
    return 0;
  }
  const root = resolve(flags.root);
  const st = await stat(root).catch(() => null);
  if (!st?.isDirectory()) {
    console.error(`emmer-node: --root ${flags.root}: not a folder`);
    return 2;
  }
  const access = flags.write ? "read-write" : "read-only";
  const workers = flags.workers > 1 ? await import("./adapters/node_workers.ts") : null;
  if (workers?.isWorker) workers.workerStarting();
  if (workers && !workers.isWorker) {
    // The primary serves nothing itself: it forks the workers and passes signals on.
    return workers.runPrimary(flags.workers, () => {
      console.log(`emmer-node: serving ${root} (${access}) on ${flags.host}:${flags.port}; ${flags.workers} worker processes; Ctrl-C stops`);
    }, (line) => console.log(line));
  }
  const verbose = flags.verbose;
  const app = new Emmer({
    hostname: flags.host,
    port: flags.port,
    maxBlksize: flags.maxBlksize,
    maxWindowsize: flags.maxWindowsize,
    timeout: flags.timeout,
    retries: flags.retries,
    maxSessions: flags.maxSessions,
    maxRequestsPerSecond: flags.maxRequestsPerSecond,
    singlePort: flags.singlePort,
    onTransfer: (e) => console.log(formatEvent(e, verbose)),
    onError: (error, context) => console.error(`emmer-node: ${context}: ${verbose ? (error as Error)?.stack ?? error : error}`),
  });
  const dir = serveDir(root, { write: flags.write });
  app.read("*", dir.read);
  if (dir.write) app.write("*", dir.write);
  try {
    await app.listen();
  } catch (error) {
    console.error(`emmer-node: cannot listen on ${flags.host}:${flags.port}: ${(error as Error).message}`);
    return 1;
  }
  const a = app.address!;
  if (workers) workers.reportListening(); // the primary prints the one startup line
  else console.log(`emmer-node: serving ${root} (${access}) on ${a.address}:${a.port}; Ctrl-C stops`);
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130); // a second Ctrl-C does not wait
      stopping = true;
      if (!workers) console.log("emmer-node: stopping (live transfers get 5 s to finish)");
      app.close().then(done);
    };
    if (workers) workers.onWorkerStop(stop);
    else {
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    }
  });
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  console.error("emmer-node:", error);
  process.exit(1);
});
