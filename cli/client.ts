/**
 * `emmer-node get URL [-o FILE|-]` and `emmer-node put FILE|- URL`: one transfer with the
 * library's TftpClient, a progress line on a terminal, exit 0 (done), 1 (the server's
 * ERROR, no answer, a local file that cannot be read or written) or 2 (bad usage).
 */
import process from "node:process";
import { lookup } from "node:dns/promises";
import { access, rename, stat, unlink } from "node:fs/promises";
import { closeSync, constants, createReadStream, openSync, unlinkSync, writeSync } from "node:fs";
import { isIP } from "node:net";
import { basename, dirname, join } from "node:path";
import { TftpClient, TftpError, TftpServerError } from "../mod.ts";
import { type FlagSpec, flagLines, getopt, integer, UsageError } from "./getopt.ts";
import { ProgressBar } from "./progress.ts";
import { hostPort, parseTftpUrl, type TftpUrl, UrlError } from "./url.ts";

type Command = "get" | "put";

interface ClientFlags {
  output?: string;
  blksize: number;
  windowsize?: number;
  timeout?: number;
  retries: number;
  mode?: "octet" | "netascii";
  quiet: boolean;
  operands: string[];
}

function setMode(flags: ClientFlags, value: string, flag: string): void {
  const mode = value.toLowerCase();
  if (mode !== "octet" && mode !== "netascii") throw new UsageError(`${flag} must be octet or netascii, not "${value}"`);
  flags.mode = mode;
}

/** The flags, in --help's order. */
const FLAGS: FlagSpec<ClientFlags>[] = [
  { names: ["-o", "--output"], arg: "FILE", help: "get: write here (the URL's file name; - stdout)", set: (f, v) => (f.output = v) },
  { names: ["-b", "--blksize"], arg: "N", help: "block size to ask for, 8..65464 (1468)", set: (f, v, n) => (f.blksize = integer(v, n, 8, 65464)) },
  { names: ["-W", "--windowsize"], arg: "N", help: "blocks per window to ask for, 1..65535 (1)", set: (f, v, n) => (f.windowsize = integer(v, n, 1, 65535)) },
  { names: ["-t", "--timeout"], arg: "S", help: "retransmission timeout, 1..255 s; sent as option (1)", set: (f, v, n) => (f.timeout = integer(v, n, 1, 255)) },
  { names: ["--retries"], arg: "N", help: "retransmissions before giving up, 0..100 (5)", set: (f, v, n) => (f.retries = integer(v, n, 0, 100)) },
  { names: ["-m", "--mode"], arg: "MODE", help: "octet or netascii (octet; or ;mode=netascii on the URL)", set: setMode },
  { names: ["-q", "--quiet"], help: "no progress line (drawn only when stderr is a terminal)", set: (f) => (f.quiet = true) },
  { names: ["-h", "--help"], help: "print this help and exit", action: "help", set: () => {} },
];

export function clientUsage(): string {
  return [
    "Usage: emmer-node get tftp://HOST[:PORT]/PATH [-o FILE|-] [flags]",
    "       emmer-node put FILE|- tftp://HOST[:PORT]/PATH [flags]",
    "Downloads or uploads one file over TFTP. Defaults in parentheses.",
    "",
    ...flagLines(FLAGS),
    "",
    "HOST: an IP address ([::1] for IPv6) or a name (IPv4 first); PORT 69 if none.",
    "PATH is percent-decoded; put to a URL ending in / appends FILE's name.",
    "Exit status: 0 done; 1 failed (the server's ERROR, no answer); 2 bad usage.",
  ].join("\n");
}

/** The flags (cli/getopt.ts); operands may come between them; "-" is an operand. */
function parseArgs(args: string[]): ClientFlags | "help" {
  const flags: ClientFlags = { blksize: 1468, retries: 5, quiet: false, operands: [] };
  return getopt(args, FLAGS, flags, (arg) => flags.operands.push(arg)) === "help" ? "help" : flags;
}

/** A name's address, IPv4 first (most TFTP servers listen on IPv4 only); an IP literal as it is. */
async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  const all = await lookup(host, { all: true });
  const chosen = all.find((a) => a.family === 4) ?? all[0];
  if (!chosen) throw new Error(`${host} has no address`);
  return chosen.address;
}

/** The last part of a TFTP path, as a local file name ("" for none). */
function lastPart(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return name === "." || name === ".." ? "" : name;
}

interface Job {
  command: Command;
  url: TftpUrl;
  /** get: the file written, "-" for stdout; put: the file read, "-" for stdin. */
  local: string;
  /** The file name sent in the request. */
  remote: string;
  flags: ClientFlags;
}

function plan(command: Command, flags: ClientFlags): Job {
  const ops = flags.operands;
  const want = command === "get" ? "one URL" : "a FILE (or -) and a URL";
  if (ops.length !== (command === "get" ? 1 : 2)) {
    throw new UsageError(`${command} takes ${want}, not ${ops.length === 0 ? "nothing" : ops.map((o) => `"${o}"`).join(" ")}`);
  }
  let url: TftpUrl;
  try {
    url = parseTftpUrl(ops[ops.length - 1]);
  } catch (error) {
    if (error instanceof UrlError) throw new UsageError(error.message);
    throw error;
  }
  if (flags.mode && url.mode && flags.mode !== url.mode) throw new UsageError(`--mode ${flags.mode} and ;mode=${url.mode} on the URL disagree`);
  if (command === "get") {
    if (url.path === "") throw new UsageError("the URL names no file: tftp://HOST/PATH");
    const local = flags.output ?? lastPart(url.path);
    if (local === "") throw new UsageError(`cannot name a local file after "${url.path}": give -o FILE`);
    return { command, url, local, remote: url.path, flags };
  }
  if (flags.output !== undefined) throw new UsageError("-o is for get; put reads FILE");
  const local = ops[0];
  let remote = url.path;
  if (remote === "" || remote.endsWith("/")) {
    if (local === "-") throw new UsageError("put - (stdin) needs a file name in the URL");
    remote += basename(local);
  }
  return { command, url, local, remote, flags };
}

/** The whole chunk, however many writes it takes. */
function writeAll(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.length;) at += writeSync(fd, chunk, at, chunk.length - at);
}

/** Resolves once what was written to stdout has gone out. */
function flushStdout(): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(new Uint8Array(0), (error) => (error ? reject(error) : resolve())));
}

/** FILE as an upload body with its size (announced as tsize), or an Error saying why it cannot be read. */
async function uploadBody(path: string): Promise<{ body: AsyncIterable<Uint8Array>; size: number }> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error("not a regular file");
    await access(path, constants.R_OK);
    return { body: createReadStream(path), size: st.size };
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** What went wrong, as the one line after "emmer-node: ". */
function describe(error: unknown, job: Job): string {
  if (error instanceof TftpServerError) return `server said ERROR ${error.code}: ${error.message}`;
  if (error instanceof TftpError) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${job.command} tftp://${hostPort(job.url)}/${job.remote}: ${error.message}${cause}`;
  }
  return (error as Error)?.message ?? String(error);
}

async function transfer(job: Job): Promise<number> {
  const { flags, url } = job;
  const mode = flags.mode ?? url.mode ?? "octet";
  let address: string;
  try {
    address = await resolveHost(url.host);
  } catch (error) {
    process.stderr.write(`emmer-node: cannot resolve ${url.host}: ${(error as Error).message}\n`);
    return 1;
  }
  const client = new TftpClient(address, url.port, { timeoutMs: (flags.timeout ?? 1) * 1000, retries: flags.retries });
  const bar = process.stderr.isTTY && !flags.quiet ? new ProgressBar(process.stderr, lastPart(job.remote) || job.remote) : null;
  const options = {
    mode,
    blksize: flags.blksize,
    windowsize: flags.windowsize,
    timeout: flags.timeout,
    // tftpd-hpa refuses tsize in netascii (ERROR 8); the size there is the wire's, not the file's.
    tsize: mode === "octet",
    onProgress: bar ? (bytes: number, total?: number) => bar.update(bytes, total) : undefined,
  };

  // get: a temporary file beside the output, renamed over it once complete; removed on failure or Ctrl-C.
  let temp: string | null = null;
  const onSignal = () => {
    bar?.fail();
    if (temp) {
      try {
        unlinkSync(temp);
      } catch { /* already gone */ }
    }
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    if (job.command === "get") {
      // Written as it arrives (flat memory for any size): synchronously to the file, so that
      // a slow disk slows the transfer rather than filling memory.
      let fd = -1;
      if (job.local !== "-") {
        const path = join(dirname(job.local), `.${basename(job.local)}.${process.pid}.part`);
        try {
          fd = openSync(path, "wx");
        } catch (error) {
          throw new Error(`cannot write ${job.local}: ${(error as Error).message}`);
        }
        temp = path;
      }
      let bytes = 0;
      const onData = (chunk: Uint8Array) => {
        bytes += chunk.length;
        if (fd >= 0) writeAll(fd, chunk);
        else process.stdout.write(chunk);
      };
      try {
        await client.get(job.remote, { ...options, onData });
      } finally {
        if (fd >= 0) closeSync(fd);
      }
      bar?.finish(bytes);
      if (temp) {
        await rename(temp, job.local);
        temp = null;
      } else await flushStdout();
    } else {
      const body = job.local === "-" ? { body: process.stdin as AsyncIterable<Uint8Array> } : await uploadBody(job.local);
      let sent = 0;
      await client.put(job.remote, body, { ...options, onProgress: (n: number, total?: number) => (sent = n, bar?.update(n, total)) });
      bar?.finish(sent);
    }
    return 0;
  } catch (error) {
    bar?.fail();
    if (temp) await unlink(temp).catch(() => {});
    process.stderr.write(`emmer-node: ${describe(error, job)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Runs `emmer-node get|put ...`; `argv` starts with the command. Resolves with the exit status. */
export async function runClient(argv: string[]): Promise<number> {
  const command = argv[0] as Command;
  let job: Job;
  try {
    const flags = parseArgs(argv.slice(1));
    if (flags === "help") {
      process.stdout.write(`${clientUsage()}\n`);
      return 0;
    }
    job = plan(command, flags);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`emmer-node ${command}: ${error.message}\n(emmer-node ${command} --help lists the flags)\n`);
    return 2;
  }
  return await transfer(job);
}

