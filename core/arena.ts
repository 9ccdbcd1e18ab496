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
const free: number[][] = [];
let top = ARENA_BASE;
let inUse = 0;

function sizeClass(bytes: number): number {
  return Math.max(MIN_CLASS, Math.ceil(Math.log2(Math.max(1, bytes))));
}

/** Returns a region of at least `bytes` bytes, or 0 when the arena is exhausted. */
export function allocate(bytes: number): number {
  const c = sizeClass(bytes);
  const size = 2 ** c;
  const list = free[c];
  let ptr = list && list.length > 0 ? list.pop()! : 0;
  if (ptr === 0) {
    if (top + size > ARENA_LIMIT || !ensureMemory(top + size)) return 0;
    ptr = top;
    top += size;
  }
  inUse += size;
  return ptr;
}

/** Gives back a region from {@link allocate}; `bytes` is the size that was asked for. */
export function release(ptr: number, bytes: number): void {
  const c = sizeClass(bytes);
  (free[c] ??= []).push(ptr);
  inUse -= 2 ** c;
}

/** Bytes handed out and not yet released (for stats and tests). */
export function arenaInUse(): number {
  return inUse;
}
