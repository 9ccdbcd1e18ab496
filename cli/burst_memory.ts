/**
 * Gives back what a burst of new transfers left the JavaScript engine holding.
 *
 * When thousands of requests arrive at once, nearly every new object survives (the
 * transfers live on), and V8 grows its young generation: on Node to 2 x 16 MiB, on Deno
 * 2.9 (V8 15) to about 50 MiB. It gives it back only once the process has idled for
 * some 10 to 20 s. What survives in a server is its transfers, which the old generation
 * holds anyway; its garbage, per datagram, dies young. Every engine also keeps the
 * burst's garbage (the handlers' promises, async frames and file-system results) until
 * its next full collection, and on a busy machine that came later than 5 s after the
 * burst. BENCHMARKS.md, "Stalled-session memory", has the measurements.
 *
 * - Node: V8's semi-space growth factor is read at each growth, so setting it to 1
 *   after start keeps the young generation at its initial size (V8's size limits are
 *   fixed at start and cannot be changed here).
 * - Deno: its V8 takes flags only on its command line (--v8-flags, DENO_V8_FLAGS), and
 *   V8 15 grows the young generation without reading the growth factor; a full
 *   collection shrinks it to what is live in it. With the ffi permission on glibc,
 *   glibc's malloc_trim follows the collection: the runtime's own allocations during
 *   the burst (Rust's, through malloc) leave free pages in malloc's arenas.
 * - Every runtime: once a second the CLI looks at the heap's use and at the CPU the
 *   process took; when the heap has grown by more than 8 MiB since the last collection
 *   of ours (or the start) and the process was quiet (under 10 ms of CPU a second) for
 *   two seconds in a row, it asks for a full collection: V8's `gc` (Node, Deno),
 *   `Bun.gc(true)`. It takes tens of milliseconds with 10,000 live transfers, once per
 *   burst. The heap's use alone is no measure of quiet: it moves in steps, and stood
 *   still for whole seconds in the middle of a burst on a busy machine, where even one
 *   second of little CPU could be a second without a turn on it.
 */
import process from "node:process";
import { runtimeName } from "../adapters/runtime.ts";

/** Growth of the heap's use since the last collection that counts as a burst. */
export const GROWN = 8 * 1024 * 1024;
/** CPU time (µs, user and system) in one second below which the process counts as quiet. */
export const QUIET_CPU = 10_000;

/**
 * True when the heap's use (bytes) has grown past `GROWN` over `base` (its use after
 * the last collection of ours, or at start) and the process spent under `QUIET_CPU` µs
 * on the CPU in the last second.
 */
export function burstIsOver(base: number, now: number, cpuMicros: number): boolean {
  return now - base > GROWN && cpuMicros < QUIET_CPU;
}

interface V8Module {
  setFlagsFromString(flags: string): void;
}

/**
 * V8's `gc` (a full collection; on Deno it also shrinks the young generation), or null
 * where it cannot be had. `--expose-gc` set after start installs it in contexts made
 * from then on: a node:vm context, whose `gc` collects the whole isolate.
 */
export async function v8Collection(v8: V8Module): Promise<(() => void) | null> {
  try {
    v8.setFlagsFromString("--expose-gc");
    const vm = await import("node:vm");
    const gc = vm.runInNewContext("typeof gc === 'function' ? gc : null");
    return typeof gc === "function" ? () => gc() : null;
  } catch {
    return null;
  }
}

interface DenoTrim {
  permissions: { querySync(d: { name: string }): { state: string } };
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Record<string, (...args: unknown[]) => unknown> };
}

/**
 * glibc's malloc_trim(0) through Deno's FFI (free pages in every arena go back to the
 * system), or null: no ffi permission (asked first: dlopen would prompt), or no glibc.
 */
export function mallocTrim(): (() => void) | null {
  const D = (globalThis as unknown as { Deno?: DenoTrim }).Deno;
  try {
    if (D?.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    const { symbols } = D.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
    return () => void symbols.malloc_trim(0);
  } catch {
    return null;
  }
}

/** This runtime's full collection (and, on Deno, the trim after it), or null. */
async function fullCollection(): Promise<(() => void) | null> {
  const runtime = runtimeName();
  if (runtime === "bun") {
    const B = (globalThis as unknown as { Bun: { gc?(sync: boolean): void } }).Bun;
    return typeof B.gc === "function" ? () => B.gc!(true) : null;
  }
  const v8 = (await import("node:v8")) as unknown as V8Module;
  // Node: the young generation stays small from the start (see above).
  if (runtime === "node") v8.setFlagsFromString("--semi-space-growth-factor=1");
  const collect = await v8Collection(v8);
  const trim = runtime === "deno" ? mallocTrim() : null;
  return collect && trim ? () => (collect(), trim()) : collect;
}

/** Called once at start by the CLI: see the comment at the top of this file. */
export async function releaseBurstMemory(): Promise<void> {
  const collect = await fullCollection();
  if (collect === null) return;
  const { setInterval } = await import("node:timers");
  const cpu = () => {
    const { user, system } = process.cpuUsage();
    return user + system;
  };
  let base = process.memoryUsage().heapUsed;
  let cpuBefore = cpu();
  let quietSeconds = 0;
  setInterval(() => {
    const cpuNow = cpu();
    quietSeconds = burstIsOver(base, process.memoryUsage().heapUsed, cpuNow - cpuBefore) ? quietSeconds + 1 : 0;
    cpuBefore = cpuNow;
    if (quietSeconds < 2) return;
    quietSeconds = 0;
    collect();
    base = process.memoryUsage().heapUsed;
    cpuBefore = cpu();
  }, 1000).unref();
}
