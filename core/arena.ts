/**
 * Allocation of linear-memory regions (block rings, netascii staging) for
 * transfers. Payload bytes are read straight into these regions and sent as
 * views of them, so the hot path copies nothing.
 *
 * Sizes are rounded up to a power of two (at least 1 KiB) and freed regions go
 * to a free list per size, so a busy server reuses the same few regions instead
 * of growing. The memory only grows, up to {@link ARENA_LIMIT}.
 */
import { ARENA_BASE, ensureMemory } from "./codec.ts";

/** Upper bound of the arena: wasm32 addresses 4 GiB; leave headroom below it. */
export const ARENA_LIMIT = 3 * 1024 * 1024 * 1024;

const MIN_CLASS = 10; // 1 KiB
const MAX_CLASS = 31;
const free: number[][] = [];
/** The size class of each region handed out (a region may serve a smaller request). */
const classOf = new Map<number, number>();
let top = ARENA_BASE;
let inUse = 0;

function sizeClass(bytes: number): number {
  return Math.max(MIN_CLASS, Math.ceil(Math.log2(Math.max(1, bytes))));
}

/**
 * Returns a region of at least `bytes` bytes, or 0 when the arena is exhausted.
 * A free region of the right class first; then fresh memory; then, when the
 * arena is full, a larger free region split in halves (so that memory once
 * used by big rings serves small ones). Split regions are not merged again.
 */
export function allocate(bytes: number): number {
  const c = sizeClass(bytes);
  let cls = c;
  let ptr = free[c]?.pop() ?? 0;
  if (ptr === 0) {
    const size = 2 ** c;
    if (top + size <= ARENA_LIMIT && ensureMemory(top + size)) {
      ptr = top;
      top += size;
    } else {
      // Split a larger free region: keep its first 2^c bytes, free the halves of the rest.
      let big = c + 1;
      while (big <= MAX_CLASS && !(free[big]?.length)) big++;
      if (big > MAX_CLASS) return 0;
      ptr = free[big]!.pop()!;
      for (let k = c; k < big; k++) (free[k] ??= []).push(ptr + 2 ** k);
      cls = c;
    }
  }
  classOf.set(ptr, cls);
  inUse += 2 ** cls;
  return ptr;
}

/** Gives back a region from {@link allocate}. */
export function release(ptr: number): void {
  const cls = classOf.get(ptr);
  if (cls === undefined) return; // not ours, or released twice
  classOf.delete(ptr);
  (free[cls] ??= []).push(ptr);
  inUse -= 2 ** cls;
}

/** Bytes handed out and not yet released (for stats and tests). */
export function arenaInUse(): number {
  return inUse;
}
