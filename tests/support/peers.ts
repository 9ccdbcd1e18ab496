// Wrappers around real TFTP clients for interop tests: curl, tftp-hpa, atftp
// and busybox tftp. Each call spawns the client with an argument array (no
// shell) and kills it by PID after a hard timeout. CI installs them with
// .ci/install-peers.sh. Only tested against IPv4 (127.0.0.1).
//
// What each client does (checked on Debian 12 against tftpd-hpa 5.2 and a
// UDP listener that printed the raw RRQ/WRQ):
//
// curl 7.88 ............ get: -o LOCAL URL; put: -T LOCAL URL, where URL is
//   tftp://HOST:PORT/REMOTE (percent-encoded; curl strips the leading "/" and
//   URL-decodes). With no flag it sends "tsize 0 blksize 512 timeout 6" (put:
//   tsize = file size); --tftp-blksize N changes only blksize; tsize and
//   timeout cannot be left out on their own, only all options together with
//   --tftp-no-options (used here when no option is asked). No windowsize.
//   netascii: ";mode=netascii" on the URL (or -B). curl sends mode netascii but
//   translates nothing: a get keeps the CRLFs, a put sends bare LFs as is.
//   Exit codes on a server ERROR: 68 for code 1 (not found), 69 for 2, 70 for
//   3, 71 for 0 and 4, 72-74 for 5-7, 42 for 8 (option refused); the message
//   text is often a stale "getpeername() failed with errno 107" (curl 7.88
//   bug), so trust the exit code. No local file is left after a failed get.
//   No answer: curl waits about 300 s (retry 6 s); only the hard timeout ends it.
// tftp-hpa 5.2 ......... tftp -l -m octet|netascii HOST PORT -c get REMOTE LOCAL
//   (-c must come last; -l = literal, so ":" in REMOTE is not host:file).
//   Sends no options at all, ever (no blksize, tsize, windowsize). Its default
//   mode is netascii, so -m octet is always passed. netascii is translated
//   both ways (put: LF -> CR LF, CR -> CR NUL; atftp does the same).
//   EXIT CODE IS 0 ON A SERVER ERROR ("Error code 1: File not found" is
//   printed on stdout) and the local file is created (empty) before the
//   request; use failed() below. No answer: "Transfer timed out." on
//   stdout after 25 s, exit 69. Without -c it reads commands from stdin
//   ("rexmt S", "timeout S", "put L R", "get R L") and runs them all from ONE
//   local port: a new request may come from the port of the last transfer.
// atftp 0.8.0 .......... atftp -g|-p -r REMOTE -l LOCAL [--option ...] HOST PORT
//   Sends no options by default. --option "blksize N", --option "windowsize N",
//   --option tsize (NOT "tsize enable" as the man page says: that sends the
//   literal value "enable" in an RRQ; bare "tsize" sends 0, a WRQ the file
//   size), --option "mode netascii" (there is no --mode flag). Prints "Option
//   x = y" on stderr for each. Exit 255 on a server ERROR (and leaves an empty
//   local file on get) and on no answer (6 retries of 5 s, ~30 s; an ICMP
//   port-unreachable also just costs a 5 s "timeout: retrying").
// busybox 1.35 tftp .... busybox tftp -g|-p -r REMOTE -l LOCAL [-b N] HOST PORT
//   Always sends "tsize" (0 on get, file size on put); -b N adds blksize N
//   before it, except -b 512 which sends nothing extra. Octet only (no
//   netascii), no windowsize. Exit 1 on a server ERROR ("tftp: server error:
//   (1) File not found" on stderr; the partial local file is removed) and on
//   no answer ("tftp: timeout", ~13 s). LOCAL "-" means stdout/stdin. Prints a
//   progress bar on stderr even when stderr is not a terminal.
//
// tftpd-hpa (as a reference server) answers tsize in netascii mode with
// ERROR 8 "Unsupported option(s) requested": curl netascii with any option
// (curl then also sends tsize) fails there with exit 42.

import { spawn, spawnSync } from "node:child_process";

export type Peer = "curl" | "tftp-hpa" | "atftp" | "busybox";
export const PEERS: readonly Peer[] = ["curl", "tftp-hpa", "atftp", "busybox"];

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface TransferOptions {
  host: string;
  port: number;
  /** file name as sent in the RRQ/WRQ */
  remote: string;
  /** local path: written by get, read by put */
  local: string;
  blksize?: number;
  windowsize?: number;
  /** seconds, sent as the RFC 2349 timeout option (atftp only; it then retransmits on that timeout too) */
  timeout?: number;
  /** true: ask for tsize; false: the request must carry no tsize; unset: client default */
  tsize?: boolean;
  mode?: "octet" | "netascii";
  /** hard limit for the whole client run (default 30 s); the child is SIGKILLed */
  timeoutMs?: number;
}

type Direction = "get" | "put";

const found = new Map<Peer, boolean>();

function probe(cmd: string, args: string[], test: (out: string) => boolean): boolean {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) return false;
  return test(`${r.stdout ?? ""}\n${r.stderr ?? ""}`);
}

/** Is this client installed (and the right one)? Cached per process. */
export function hasPeer(peer: Peer): boolean {
  let ok = found.get(peer);
  if (ok !== undefined) return ok;
  switch (peer) {
    case "curl":
      ok = probe("curl", ["-V"], (o) => /^Protocols:.*\btftp\b/m.test(o));
      break;
    case "tftp-hpa":
      ok = probe("tftp", ["-V"], (o) => /tftp-hpa/.test(o));
      break;
    case "atftp":
      ok = probe("atftp", ["-V"], (o) => /atftp/.test(o));
      break;
    case "busybox":
      ok = probe("busybox", ["--list"], (o) => /^tftp$/m.test(o));
      break;
  }
  found.set(peer, ok);
  return ok;
}

function unsupported(peer: Peer, option: string): never {
  throw new Error(`${peer} does not support ${option}`);
}

function tftpUrl(o: TransferOptions): string {
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  const path = o.remote.split("/").map(encodeURIComponent).join("/");
  return `tftp://${host}:${o.port}/${path}${o.mode === "netascii" ? ";mode=netascii" : ""}`;
}

/** The command line for one transfer; throws if the client cannot do an option. */
export function commandFor(peer: Peer, dir: Direction, o: TransferOptions): { cmd: string; args: string[] } {
  const port = String(o.port);
  switch (peer) {
    case "curl": {
      if (o.windowsize !== undefined) unsupported(peer, "windowsize");
      if (o.timeout !== undefined) unsupported(peer, "timeout");
      const args = ["-sS", "--globoff"];
      const anyOption = o.blksize !== undefined || o.tsize === true;
      if (!anyOption) args.push("--tftp-no-options");
      else if (o.tsize === false) unsupported(peer, "blksize without tsize");
      if (o.blksize !== undefined) args.push("--tftp-blksize", String(o.blksize));
      if (dir === "get") args.push("-o", o.local);
      else args.push("-T", o.local);
      args.push(tftpUrl(o));
      return { cmd: "curl", args };
    }
    case "tftp-hpa": {
      if (o.blksize !== undefined) unsupported(peer, "blksize");
      if (o.windowsize !== undefined) unsupported(peer, "windowsize");
      if (o.timeout !== undefined) unsupported(peer, "timeout");
      if (o.tsize === true) unsupported(peer, "tsize");
      const args = ["-l", "-m", o.mode ?? "octet", o.host, port, "-c"];
      if (dir === "get") args.push("get", o.remote, o.local);
      else args.push("put", o.local, o.remote);
      return { cmd: "tftp", args };
    }
    case "atftp": {
      const args = [dir === "get" ? "-g" : "-p", "-r", o.remote, "-l", o.local];
      if (o.blksize !== undefined) args.push("--option", `blksize ${o.blksize}`);
      if (o.windowsize !== undefined) args.push("--option", `windowsize ${o.windowsize}`);
      if (o.timeout !== undefined) args.push("--option", `timeout ${o.timeout}`);
      if (o.tsize === true) args.push("--option", "tsize");
      if (o.mode === "netascii") args.push("--option", "mode netascii");
      args.push(o.host, port);
      return { cmd: "atftp", args };
    }
    case "busybox": {
      if (o.windowsize !== undefined) unsupported(peer, "windowsize");
      if (o.timeout !== undefined) unsupported(peer, "timeout");
      if (o.mode === "netascii") unsupported(peer, "netascii");
      if (o.tsize === false) unsupported(peer, "requests without tsize");
      const args = ["tftp", dir === "get" ? "-g" : "-p", "-r", o.remote, "-l", o.local];
      if (o.blksize !== undefined) args.push("-b", String(o.blksize));
      args.push(o.host, port);
      return { cmd: "busybox", args };
    }
  }
}

/**
 * Run a command with a hard timeout; the child is killed by its PID when it
 * expires. Its stdin gets `input`, if any, then end of file.
 */
export function run(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.on("error", () => {}); // a client that exits without reading its input
    child.stdin.end(input ?? "");
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** Download o.remote from the server into o.local. */
export function get(peer: Peer, o: TransferOptions): Promise<RunResult> {
  const { cmd, args } = commandFor(peer, "get", o);
  return run(cmd, args, o.timeoutMs);
}

/** Upload o.local to the server as o.remote. */
export function put(peer: Peer, o: TransferOptions): Promise<RunResult> {
  const { cmd, args } = commandFor(peer, "put", o);
  return run(cmd, args, o.timeoutMs);
}

/**
 * Did the transfer fail? Non-zero exit or timeout, and for tftp-hpa (which
 * exits 0 after a server ERROR) an "Error code N: ..." line on its output.
 */
export function failed(peer: Peer, r: RunResult): boolean {
  if (r.timedOut || r.code !== 0) return true;
  return peer === "tftp-hpa" && /Error code \d+|Transfer timed out/.test(r.stdout + r.stderr);
}
