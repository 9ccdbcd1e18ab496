/**
 * Reads the page cache can answer at once, made on the event loop instead of the
 * runtime's thread pool. In a boot storm every client reads the same hot file: a pool
 * read of it costs a thread hop, a wake-up and a promise per fill, more than copying
 * the bytes. Where the batch path's FFI has such a read (native/nowait_read.ts:
 * preadv2 with RWF_NOWAIT), detect.ts installs it here; serveDir's files use it when
 * it is there and read what it left the usual way. No FFI is imported here: serveDir
 * stays runtime-agnostic.
 */

/**
 * Reads from `position` of `fd` into `views`, one after the other (none empty), only
 * what the page cache holds. Returns the bytes read: all the views hold, or fewer where
 * the cache stopped, the file ended or the read failed (a read that waits meets the
 * error); or -1 when the descriptor's file system cannot read without waiting (ask no
 * more for that descriptor). Never waits for the disk and never throws.
 */
export type CachedRead = (fd: number, views: readonly Uint8Array[], position: number) => number;

/** For the metrics: reads that the cache answered, their bytes, and fills that then went to the pool. */
export const cachedReadStats = { reads: 0, bytes: 0, fallbacks: 0 };

let installed: CachedRead | null = null;

/** Installs the read (null: none, every read goes to the pool). */
export function installCachedRead(read: CachedRead | null): void {
  installed = read;
}

export function cachedRead(): CachedRead | null {
  return installed;
}
