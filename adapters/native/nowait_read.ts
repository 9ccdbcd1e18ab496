/**
 * File reads that never wait for the disk: preadv2 with RWF_NOWAIT (Linux 4.14 and later
 * for reads through the page cache) through the batch path's FFI, straight into the
 * callers' views (a fill's blocks in WebAssembly memory), on the calling thread. The kernel
 * copies what the page cache holds and answers EAGAIN, or a short count, where it would
 * have to wait. Installed by detect.ts for serveDir (adapters/cached_read.ts).
 */
import { closeSync, openSync, readSync } from "node:fs";
import process from "node:process";
import { EAGAIN, EINTR, EINVAL, ENOSYS, EOPNOTSUPP, errnoName, IOV_MAX, IOVEC_SIZE, RWF_NOWAIT } from "./abi.ts";
import { type BatchDatagrams, setPointer } from "./datagrams.ts";
import type { CachedRead } from "../cached_read.ts";

/** What says the call itself is refused (an old kernel, a file system without it), not this read. */
const REFUSED = [EOPNOTSUPP, EINVAL, ENOSYS];

/** The read, through `native`'s libc and its table of buffer addresses; null where preadv2 is not bound. */
export function nowaitRead(native: BatchDatagrams): CachedRead | null {
  const { libc } = native;
  const preadv2 = libc.preadv2;
  if (preadv2 === undefined) return null;
  const iovecs = new Uint8Array(IOV_MAX * IOVEC_SIZE);
  const iov = new DataView(iovecs.buffer);
  return (fd, views, position) => {
    let total = 0;
    for (let at = 0; at < views.length;) {
      const count = Math.min(IOV_MAX, views.length - at);
      let asked = 0;
      for (let i = 0; i < count; i++) {
        const v = views[at + i];
        setPointer(iov, i * IOVEC_SIZE, v.length > 0 ? native.pointer(v) : 0);
        setPointer(iov, i * IOVEC_SIZE + 8, v.length);
        asked += v.length;
      }
      let r: number;
      let errno = 0;
      do {
        r = preadv2(fd, iovecs, count, position + total, RWF_NOWAIT);
        errno = r < 0 ? libc.errno() : 0;
      } while (errno === EINTR);
      if (r < 0) return total === 0 && REFUSED.includes(errno) ? -1 : total;
      total += r;
      if (r < asked) break; // not all cached, or the end of the file
      at += count;
    }
    return total;
  };
}

export interface NowaitProbe {
  ok: boolean;
  why: string;
  read: CachedRead | null;
}

/**
 * Tries the read once on a file every process has (its own executable), and checks
 * its bytes against node:fs's: a kernel or file system that refuses RWF_NOWAIT says so here.
 */
export function probeNowaitRead(native: BatchDatagrams): NowaitProbe {
  const read = nowaitRead(native);
  const no = (why: string): NowaitProbe => ({ ok: false, why, read: null });
  if (read === null) return no(`${native.libc.ffi} could not bind preadv2`);
  let fd = -1;
  for (const path of ["/proc/self/exe", process.execPath]) {
    if (!mayRead(path)) continue;
    try {
      fd = openSync(path, "r");
      break;
    } catch { /* no /proc, or no permission: the next */ }
  }
  if (fd < 0) return no("no file to try preadv2 on (neither /proc/self/exe nor the runtime's executable opens)");
  try {
    const got = new Uint8Array(64);
    const n = read(fd, [got], 0);
    if (n <= 0) {
      // The read returned at its failed call (an executable is not empty): errno is that call's.
      const errno = native.libc.errno();
      if (errno !== EAGAIN) return no(`preadv2 with RWF_NOWAIT refused: ${errnoName(errno)}`);
      return { ok: true, why: "preadv2 with RWF_NOWAIT answered EAGAIN (not cached)", read };
    }
    const want = new Uint8Array(64);
    const m = readSync(fd, want, 0, 64, 0);
    if (n !== m || got.some((b, i) => b !== want[i])) return no(`preadv2 read ${n} bytes that differ from node:fs's ${m}`);
    return { ok: true, why: `preadv2 with RWF_NOWAIT read ${n} cached bytes`, read };
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether `path` may be read without asking anyone: Deno with a read permission scoped elsewhere
 * (`--allow-read=/srv/tftp`) would otherwise stop at a prompt on its terminal at startup.
 */
function mayRead(path: string): boolean {
  const D = (globalThis as unknown as { Deno?: { permissions: { querySync(d: { name: string; path: string }): { state: string } } } }).Deno;
  if (D === undefined) return true;
  try {
    return D.permissions.querySync({ name: "read", path }).state === "granted";
  } catch {
    return false;
  }
}
