/**
 * Keeps V8's young generation from holding on to a burst's worth of memory.
 *
 * When thousands of requests arrive at once, nearly every new object survives (the
 * transfers live on), and V8 grows its young generation: on Node to 2 x 16 MiB, on Deno
 * 2.9 (V8 15) to about 50 MiB. It gives it back only once the process has idled for
 * some 10 to 20 s. What survives in a server is its transfers, which the old generation
 * holds anyway; its garbage, per datagram, dies young. BENCHMARKS.md, "Stalled-session
 * memory", has the measurements.
 *
 * - Node: V8's semi-space growth factor is read at each growth, so setting it to 1
 *   after start keeps the young generation at its initial size (V8's size limits are
 *   fixed at start and cannot be changed here).
 * - Deno: its V8 takes flags only on its command line (--v8-flags, DENO_V8_FLAGS), and
 *   V8 15 grows the young generation without reading the growth factor. What the
 *   process can do is ask for a full collection once the burst is over: V8 then shrinks
 *   the young generation to what is live in it. `watchYoungGeneration` looks once a
 *   second and does so when the young generation has grown past 8 MiB and the last
 *   second was quiet (no scavenge and under 1 MiB allocated, V8's own measure of a low
 *   allocation rate); the collection takes tens of milliseconds with 10,000 live
 *   transfers, once per burst. With the ffi permission on glibc, glibc's malloc_trim
 *   follows it: the runtime's own allocations during the burst (Rust's, through
 *   malloc) leave free pages in malloc's arenas that it would otherwise keep.
 * - Bun's engine is not V8.
 */
import { runtimeName } from "../adapters/runtime.ts";

/** The young generation's size and use, in bytes, as V8's heap space statistics give them. */
export interface YoungSample {
  capacity: number;
  used: number;
}

/** A young generation larger than this has been grown by a burst (V8 starts Deno's at 2.5 MiB). */
export const GROWN = 8 * 1024 * 1024;
/** Allocation in one second below which the process counts as quiet (V8's low rate is 1,000 bytes/ms). */
export const QUIET = 1024 * 1024;

/**
 * True when the young generation is grown past `GROWN` and the second from `before` to
 * `now` was quiet: no scavenge emptied it (its use did not fall) and under `QUIET`
 * bytes were allocated in it.
 */
export function burstIsOver(before: YoungSample, now: YoungSample): boolean {
  return now.capacity > GROWN && now.used >= before.used && now.used - before.used < QUIET;
}

interface V8Module {
  setFlagsFromString(flags: string): void;
  getHeapSpaceStatistics(): { space_name: string; space_size: number; space_used_size: number }[];
}

/** The young generation now, from node:v8. */
export function youngGeneration(v8: V8Module): YoungSample {
  const s = v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
  return { capacity: s?.space_size ?? 0, used: s?.space_used_size ?? 0 };
}

/**
 * V8's `gc` (a full collection that also shrinks the young generation), or null where it
 * cannot be had. `--expose-gc` set after start installs it in contexts made from then
 * on: a node:vm context, whose `gc` collects the whole isolate.
 */
export async function fullCollection(v8: V8Module): Promise<(() => void) | null> {
  try {
    v8.setFlagsFromString("--expose-gc");
    const vm = await import("node:vm");
    const gc = vm.runInNewContext("typeof gc === 'function' ? gc : null");
    return typeof gc === "function" ? () => gc() : null;
  } catch {
    return null;
  }
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

interface DenoTrim {
  permissions: { querySync(d: { name: string }): { state: string } };
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Record<string, (...args: unknown[]) => unknown> };
}

/** Called once at start by the CLI: see the comment at the top of this file. */
export async function keepYoungGenerationSmall(): Promise<void> {
  const runtime = runtimeName();
  if (runtime === "bun") return;
  const v8 = (await import("node:v8")) as unknown as V8Module;
  if (runtime === "node") return v8.setFlagsFromString("--semi-space-growth-factor=1");
  const collect = await fullCollection(v8);
  if (collect === null) return;
  const trim = mallocTrim();
  const { setInterval } = await import("node:timers");
  let before = youngGeneration(v8);
  const watch = setInterval(() => {
    const now = youngGeneration(v8);
    if (!burstIsOver(before, now)) return void (before = now);
    collect();
    trim?.();
    before = youngGeneration(v8);
    // A collection that left it grown would do no better a second later, nor every second after.
    if (before.capacity > GROWN) clearInterval(watch);
  }, 1000);
  watch.unref();
}
