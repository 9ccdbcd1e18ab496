/**
 * The emmer-node command line (dist/emmer-node.js, built by `npm run build`)
 * started inside a test's namespace with --verbose, so each transfer's log
 * line carries its options and retransmissions.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Netns } from "./netns.ts";
import { type Child, startChild } from "./process.ts";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const cli = join(repo, "dist", "emmer-node.js");

/** Builds dist/emmer-node.js when it is missing (a fresh clone before `npm run build`). */
export function ensureCli(): void {
  if (!existsSync(cli)) spawnSync(process.execPath, [join(repo, "scripts", "build-cli.mjs")], { stdio: "inherit", timeout: 120_000 });
}

export interface LogLine {
  line: string;
  filename: string;
  bytes: string;
  outcome: string;
  blksize: number;
  windowsize: number;
  /** The smallest burst of a window the server sent back to back (it shrinks for a card that drops bursts). */
  minBurst: number;
  retransmits: number;
  oack: Record<string, string> | null;
}

/** The transfer lines of a --verbose log, parsed. */
export function transfers(log: string): LogLine[] {
  const out: LogLine[] = [];
  const re = /^\S+ \S+ read ("(?:[^"\\]|\\.)*") (\S+ \S+) \S+ s (ok|failed: [^|]*?) \| \S+(?: MiB\/s)? blksize=(\d+) windowsize=(\d+) minBurst=(\d+) retransmits=(\d+) oack=(.*)$/gm;
  for (const m of log.matchAll(re)) {
    out.push({
      line: m[0],
      filename: JSON.parse(m[1]),
      bytes: m[2],
      outcome: m[3],
      blksize: Number(m[4]),
      windowsize: Number(m[5]),
      minBurst: Number(m[6]),
      retransmits: Number(m[7]),
      oack: JSON.parse(m[8]),
    });
  }
  return out;
}

export interface EmmerServer {
  child: Child;
  log: () => string;
  stop: () => Promise<void>;
}

/** emmer-node serving `root` on host:port inside `ns`; resolves once it prints its startup line. */
export async function startEmmer(ns: Netns, root: string, host: string, port: number, extra: string[] = [], timeoutMs = 600_000): Promise<EmmerServer> {
  const child = startChild(
    ns.exec([process.execPath, cli, "--root", root, "--host", host, "--port", String(port), "--verbose", ...extra]),
    timeoutMs,
  );
  try {
    await child.waitFor(/serving .* on \S+; Ctrl-C stops/, 20_000, "emmer-node's startup line");
  } catch (e) {
    await child.stop();
    throw e;
  }
  return {
    child,
    log: child.output,
    stop: async () => {
      await child.stop("SIGINT");
    },
  };
}
