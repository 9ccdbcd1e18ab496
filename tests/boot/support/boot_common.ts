/**
 * What every boot of the matrix shares: its result record, a scratch folder
 * with a world-readable root to serve, QEMU's common flags, and the server's
 * and the guest's lifetimes around the checks.
 */
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Netns } from "./netns.ts";
import type { Child } from "./process.ts";
import { type ServerName, startServer } from "./servers.ts";

export interface BootRun {
  client: string;
  card: string;
  options: string;
  server: ServerName;
  /** iPXE and OVMF: QEMU's start to the success line; U-Boot: the tftpboot command to its result */
  seconds: number;
  /** what the guest got wrong; empty when it booted and its checksums match */
  problems: string[];
  console: string;
  log: string;
  /** the size of each file the server had to give, by name */
  files: Record<string, number>;
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
export const elapsed = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
/** QEMU's console without its terminal escapes. */
// deno-lint-ignore no-control-regex -- ANSI terminal escapes (ESC) in the firmware's console
const plain = (s: string) => s.replace(/\x1b\[[0-9;?=]*[a-zA-Z]/g, "").replace(/\x1bc/g, "");

/** A fresh folder with a world-readable root/ to serve (tftpd-hpa drops to "nobody"), removed afterwards. */
export async function withWorkdir<T>(fn: (dir: string, root: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "emmer-boot-"));
  try {
    const root = join(dir, "root");
    await mkdir(root);
    await chmod(dir, 0o755);
    await chmod(root, 0o755);
    return await fn(dir, root);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Makes `names` in root world-readable and notes their sizes in `run.files`. */
export async function served(run: BootRun, root: string, names: string[]): Promise<void> {
  for (const name of names) {
    await chmod(join(root, name), 0o644);
    run.files[name] = (await stat(join(root, name))).size;
  }
}

/** A run not yet made: no time, no problem, nothing printed. */
export function newRun(client: string, card: string, options: string, server: ServerName): BootRun {
  return { client, card, options, server, seconds: NaN, problems: [], console: "", log: "", files: {} };
}

/** Gives QEMU `ms` to power itself off, then kills it by its PID. */
async function finish(qemu: Child, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([qemu.exited, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
  await qemu.stop();
}

export const QEMU_COMMON = ["-accel", "tcg", "-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot"];

/**
 * Serves `root` with the run's server on host:port inside `ns` while a guest boots: `start` starts
 * QEMU, `check` reads its console; what `check` throws becomes one of the run's problems. QEMU then
 * gets `offMs` to power itself off. The run keeps the console and the server's log.
 */
export async function serveGuest(
  run: BootRun,
  ns: Netns,
  at: { root: string; host: string; port: number },
  start: () => Child,
  check: (qemu: Child) => Promise<void>,
  offMs = 20_000,
): Promise<void> {
  const s = await startServer(run.server, ns, at.root, at.host, at.port);
  try {
    const qemu = start();
    try {
      await check(qemu);
    } catch (e) {
      run.problems.push((e as Error).message);
    }
    await finish(qemu, offMs);
    run.console = plain(qemu.output());
  } finally {
    await s.stop();
    run.log = s.log();
  }
}
