/**
 * Staging buffers lent for one file read at a time. Deno's file reads go through
 * a staging buffer (see adapters/fs.ts); a transfer waiting for its client holds
 * none, so 10,000 stalled transfers at blksize 65464 do not keep 10,000 windows
 * of staging. Sizes are powers of two from 4 KiB; a few of each size are kept
 * for the next reads, up to KEPT_BYTES in all, the rest left to the collector
 * (a fill can ask for a whole ring of several MiB).
 */
const MIN_BYTES = 4096;
/** Buffers kept per size: enough for the fills running at one moment on a busy server. */
export const KEPT_PER_SIZE = 8;
/** Bytes kept in all: a burst of large windows must not leave tens of MiB behind. */
export const KEPT_BYTES = 8 * 1024 * 1024;

const kept = new Map<number, Uint8Array<ArrayBuffer>[]>();
let out = 0;
let keptBytes = 0;

/** A buffer of at least `bytes` bytes, to be handed back with {@link giveBack}. */
export function borrow(bytes: number): Uint8Array<ArrayBuffer> {
  const size = Math.max(MIN_BYTES, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
  out++;
  const reused = kept.get(size)?.pop();
  if (reused === undefined) return new Uint8Array(size);
  keptBytes -= size;
  return reused;
}

/** Returns a buffer from {@link borrow}; the caller must not touch it afterwards. */
export function giveBack(buffer: Uint8Array<ArrayBuffer>): void {
  out--;
  let list = kept.get(buffer.length);
  if (list === undefined) kept.set(buffer.length, (list = []));
  if (list.length < KEPT_PER_SIZE && keptBytes + buffer.length <= KEPT_BYTES) {
    list.push(buffer);
    keptBytes += buffer.length;
  }
}

/** Buffers borrowed and not given back, and bytes kept for reuse (for tests). */
export function lentOut(): number {
  return out;
}
export function keptForReuse(): number {
  return keptBytes;
}
