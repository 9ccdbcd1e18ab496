/**
 * Allocation of linear-memory regions (block rings, netascii staging) for
 * transfers. Payload bytes are read straight into these regions and sent as
 * views of them, so the hot path copies nothing.
 *
 * Regions of SMALL_MAX bytes or more are rounded up to a power of two and freed
 * ones go to a free list per size, so a busy server reuses the same few regions
 * instead of growing. Smaller ones (the one-slot ring a stalled client holds,
 * ten thousand times over) are rounded up to GRAIN bytes only, and cut from
 * slabs of SLAB bytes: a ring of 516 bytes takes 576, not 1 KiB. The memory only
 * grows, up to {@link ARENA_LIMIT}.
 */
import { ARENA_BASE, ensureMemory } from "./codec.ts";

/** Upper bound of the arena: wasm32 addresses 4 GiB; leave headroom below it. */
export const ARENA_LIMIT = 3 * 1024 * 1024 * 1024;

const MIN_CLASS = 10; // 1 KiB
const MAX_CLASS = 31;
const GRAIN = 64;
const SMALL_MAX = 4096;
const SLAB = 64 * 1024;
/** Free regions of 2^c bytes, by c. */
const free: number[][] = [];
/** Free small regions of n x GRAIN bytes, by n. */
const freeSmall: number[][] = [];
/**
 * The size of each region handed out: 2^c as c (a region may serve a smaller
 * request), a small one as minus its bytes.
 */
const sizeOf = new Map<number, number>();
let top = ARENA_BASE;
let inUse = 0;
/** What is left of the slab small regions are cut from. */
let slabAt = 0;
let slabLeft = 0;

function sizeClass(bytes: number): number {
  return Math.max(MIN_CLASS, Math.ceil(Math.log2(Math.max(1, bytes))));
}

/** A region of 2^c bytes: a free one, fresh memory, or (the arena full) a larger free one split in halves; 0 if none. */
function allocateClass(c: number): number {
  const ptr = free[c]?.pop() ?? 0;
  if (ptr !== 0) return ptr;
  const size = 2 ** c;
  if (top + size <= ARENA_LIMIT && ensureMemory(top + size)) {
    top += size;
    return top - size;
  }
  // Split a larger free region: keep its first 2^c bytes, free the halves of the rest.
  // Split regions are not merged again.
  let big = c + 1;
  while (big <= MAX_CLASS && !(free[big]?.length)) big++;
  if (big > MAX_CLASS) return 0;
  const split = free[big]!.pop()!;
  for (let k = c; k < big; k++) (free[k] ??= []).push(split + 2 ** k);
  return split;
}

/** A small region of exactly `size` bytes (a multiple of GRAIN), or 0. */
function allocateSmall(size: number): number {
  const ptr = freeSmall[size / GRAIN]?.pop() ?? 0;
  if (ptr !== 0) return ptr;
  if (slabLeft < size) {
    const slab = allocateClass(sizeClass(SLAB));
    if (slab === 0) return 0;
    // The rest of the old slab is not lost: it serves a request of its size.
    if (slabLeft > 0) (freeSmall[slabLeft / GRAIN] ??= []).push(slabAt);
    slabAt = slab;
    slabLeft = SLAB;
  }
  slabAt += size;
  slabLeft -= size;
  return slabAt - size;
}

/**
 * Returns a region of at least `bytes` bytes, or 0 when the arena is exhausted.
 * A small request that finds no slab takes a region of its power-of-two class,
 * as a large one does.
 */
export function allocate(bytes: number): number {
  if (bytes < SMALL_MAX) {
    const size = Math.max(GRAIN, Math.ceil(bytes / GRAIN) * GRAIN);
    const ptr = allocateSmall(size);
    if (ptr !== 0) {
      sizeOf.set(ptr, -size);
      inUse += size;
      return ptr;
    }
  }
  const c = sizeClass(bytes);
  const ptr = allocateClass(c);
  if (ptr === 0) return 0;
  sizeOf.set(ptr, c);
  inUse += 2 ** c;
  return ptr;
}

/** Gives back a region from {@link allocate}. */
export function release(ptr: number): void {
  const s = sizeOf.get(ptr);
  if (s === undefined) return; // not ours, or released twice
  sizeOf.delete(ptr);
  if (s < 0) {
    (freeSmall[-s / GRAIN] ??= []).push(ptr);
    inUse += s;
  } else {
    (free[s] ??= []).push(ptr);
    inUse -= 2 ** s;
  }
}

/** Bytes handed out and not yet released (for stats and tests). */
export function arenaInUse(): number {
  return inUse;
}
