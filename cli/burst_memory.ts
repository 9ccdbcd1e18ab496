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
 * burst (Bun: RSS 92.6 MiB 5 s after 10,000 stalled sessions arrived, 82.3 with a
 * collection 3 s after the burst). BENCHMARKS.md, "Stalled-session memory", has the measurements.
 *
 * - Node: V8's semi-space growth factor is read at each growth, so setting it to 1
 *   after start keeps the young generation at its initial size (V8's size limits are
 *   fixed at start and cannot be changed here).
 * - Deno: its V8 takes flags only on its command line (--v8-flags, DENO_V8_FLAGS), and
 *   V8 15 grows the young generation without reading the growth factor; a full
 *   collection shrinks it to what is live in it. With the ffi permission on glibc,
 *   glibc's malloc_trim follows the collection: the runtime's own allocations during
 *   the burst (Rust's, through malloc) leave free pages in malloc's arenas.
 * - Deno and Bun: once a second the CLI looks at the heap's use and at the CPU the
 *   process took; when the heap has grown by more than 8 MiB since the last collection
 *   of ours (or the start) and the process was quiet (under 10 ms of CPU a second) for
 *   two seconds in a row, it asks for a full collection: V8's `gc` on Deno,
 *   `Bun.gc(true)` on Bun. It takes tens of milliseconds with 10,000 live transfers, once per
 *   burst. The heap's use alone is no measure of quiet: it moves in steps, and stood
 *   still for whole seconds in the middle of a burst on a busy machine, where even two
 *   seconds of little CPU can be seconds without a turn on it. So a collection counts
 *   (its heap becomes the new mark) only if the second after it is quiet too; one that
 *   the burst goes on after leaves the mark where it was, and the rest of the burst is
 *   collected once it is over.
 */
import process from "node:process";
import { runtimeName } from "../adapters/runtime.ts";

/** Growth of the heap's use since the last collection that counts as a burst. */
export const GROWN = 8 * 1024 * 1024;
/** CPU time (µs, user and system) in one second below which the process counts as quiet. */
export const QUIET_CPU = 10_000;

/** When to collect, from one sample a second (see the comment at the top of this file). */
export class BurstWatch {
  /** The heap's use (bytes) after the last collection that counted, or at start. */
  #mark: number;
  #quietSeconds = 0;
  /** The heap's use after a collection of ours not yet judged, or -1. */
  #after = -1;

  constructor(heapUsed: number) {
    this.#mark = heapUsed;
  }

  /** The heap's use now and the CPU time (µs) the process took in the last second; true: collect now, then `collected`. */
  tick(heapUsed: number, cpuMicros: number): boolean {
    const quiet = cpuMicros < QUIET_CPU;
    if (this.#after >= 0) {
      if (quiet) this.#mark = this.#after;
      this.#after = -1;
    }
    this.#quietSeconds = quiet && heapUsed - this.#mark > GROWN ? this.#quietSeconds + 1 : 0;
    if (this.#quietSeconds < 2) return false;
    this.#quietSeconds = 0;
    return true;
  }

  /** The heap's use right after the collection `tick` asked for. */
  collected(heapUsed: number): void {
    this.#after = heapUsed;
  }
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
  // Node: the young generation stays small from the start, and its `gc` (V8 11) frees the
  // burst's garbage without giving the pages back (heap 28.0 MB before and after, RSS as
  // it was): only V8's memory reducer, some 8 s later, does. Nothing to watch for.
  if (runtime === "node") {
    v8.setFlagsFromString("--semi-space-growth-factor=1");
    return null;
  }
  const collect = await v8Collection(v8);
  const trim = mallocTrim();
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
  const watch = new BurstWatch(process.memoryUsage().heapUsed);
  let cpuBefore = cpu();
  setInterval(() => {
    const cpuNow = cpu();
    const due = watch.tick(process.memoryUsage().heapUsed, cpuNow - cpuBefore);
    cpuBefore = cpuNow;
    if (!due) return;
    collect();
    watch.collected(process.memoryUsage().heapUsed);
    cpuBefore = cpu(); // the collection's own CPU is not the process being busy
  }, 1000).unref();
}
