/**
 * Staging buffers lent for one file read at a time. Deno's file reads go through
 * a staging buffer (see adapters/fs.ts); a transfer waiting for its client holds
 * none, so 10,000 stalled transfers at blksize 65464 do not keep 10,000 windows
 * of staging. Sizes are powers of two from 4 KiB; a few of each size are kept
 * for the next reads, the rest left to the collector.
 */
const MIN_BYTES = 4096;
/** Buffers kept per size: enough for the fills running at one moment on a busy server. */
export const KEPT_PER_SIZE = 8;

const kept = new Map<number, Uint8Array<ArrayBuffer>[]>();
let out = 0;

/** A buffer of at least `bytes` bytes, to be handed back with {@link giveBack}. */
export function borrow(bytes: number): Uint8Array<ArrayBuffer> {
  const size = Math.max(MIN_BYTES, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
  out++;
  return kept.get(size)?.pop() ?? new Uint8Array(size);
}

/** Returns a buffer from {@link borrow}; the caller must not touch it afterwards. */
export function giveBack(buffer: Uint8Array<ArrayBuffer>): void {
  out--;
  let list = kept.get(buffer.length);
  if (list === undefined) kept.set(buffer.length, (list = []));
  if (list.length < KEPT_PER_SIZE) list.push(buffer);
}

/** Buffers borrowed and not given back (for tests). */
export function lentOut(): number {
  return out;
}
