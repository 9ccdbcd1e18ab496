/**
 * Child processes of boot tests (QEMU, emmer-node, dnsmasq, in.tftpd), each
 * bounded by a hard timeout and killed by its PID, with its output kept for
 * the assertions and for the failure message.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface Child {
  proc: ChildProcess;
  /** everything written on stdout and stderr so far, interleaved */
  output: () => string;
  /**
   * Waits until the output from offset `from` on matches `pattern` (match.index counts from 0, not
   * `from`); rejects on timeout or exit, quoting the output's tail.
   */
  waitFor: (pattern: RegExp, ms: number, what?: string, from?: number) => Promise<RegExpMatchArray>;
  /** writes to the child's stdin */
  send: (text: string) => void;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<number | null>;
  /** signal, then SIGKILL to the whole group if it has not exited after `graceMs` */
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<number | null>;
}

const tail = (s: string, n = 3000) => (s.length > n ? `...${s.slice(-n)}` : s);

/**
 * Runs `argv` under coreutils' `timeout`, which ends it after `timeoutMs` even if this process dies
 * first, and passes SIGTERM and SIGINT on to it; timeout leads its own process group, so a SIGKILL
 * to that group (after a grace period) reaches the child too.
 */
export function startChild(argv: string[], timeoutMs: number, cwd?: string): Child {
  const seconds = String(Math.ceil(timeoutMs / 1000));
  const proc = spawn("timeout", ["--kill-after=5", seconds, ...argv], { cwd, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let done = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const onData = (d: Buffer) => {
    out += d.toString("latin1");
    wake();
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  proc.stdin!.on("error", () => {});
  const kill = (signal: NodeJS.Signals, group = false) => {
    if (done || proc.pid === undefined) return;
    try {
      process.kill(group ? -proc.pid : proc.pid, signal);
    } catch {
      // already gone
    }
  };
  let exitCode: number | null = null;
  const exited = new Promise<number | null>((resolve) => {
    proc.on("error", (e) => {
      out += `\n[spawn ${argv[0]}: ${e.message}]`;
      done = true;
      wake();
      resolve(-1);
    });
    proc.on("close", (code) => {
      done = true;
      exitCode = code;
      wake();
      resolve(code);
    });
  });
  const waitFor = (pattern: RegExp, ms: number, what = String(pattern), from = 0) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(out.slice(from));
        if (m) {
          m.index = (m.index ?? 0) + from;
          finish(() => resolve(m));
        } else if (done) finish(() => reject(new Error(`${argv[0]} ended (exit ${exitCode}) before ${what}:\n${tail(out)}`)));
      };
      const late = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${ms} ms:\n${tail(out)}`))), ms);
      const finish = (f: () => void) => {
        clearTimeout(late);
        waiters.delete(check);
        f();
      };
      waiters.add(check);
      check();
    });
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 5000) => {
    kill(signal);
    const grace = setTimeout(() => kill("SIGKILL", true), graceMs);
    const code = await exited;
    clearTimeout(grace);
    return code;
  };
  return {
    proc,
    output: () => out,
    waitFor,
    send: (text) => proc.stdin!.write(text),
    exited,
    stop,
  };
}
