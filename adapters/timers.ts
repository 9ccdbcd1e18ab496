/**
 * Clock and timers from the web platform, the same in Node, Deno and Bun.
 */
import type { Runtime } from "../core/transport.ts";

export const standardTimers: Omit<Runtime, "bind"> = {
  now: () => performance.now(),
  after(ms, fn) {
    const id = setTimeout(fn, ms);
    return { stop: () => clearTimeout(id) };
  },
};
