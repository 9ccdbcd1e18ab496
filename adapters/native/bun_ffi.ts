/**
 * libc through bun:ffi. It cannot wait for readability off the main thread,
 * so a socket read on Bun is handed to Bun's node:dgram (handoff.ts).
 */
import type { Libc } from "./libc.ts";

interface BunFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Record<string, (...args: unknown[]) => unknown> };
  ptr(value: Uint8Array): number;
  read: { i32(pointer: unknown, offset?: number): number };
  FFIType: Record<string, number>;
}

export async function bunLibc(): Promise<Libc> {
  const spec = "bun:ffi"; // not a literal import: other runtimes must never try to resolve it
  const ffi = (await import(spec)) as BunFfi;
  const { i32, u32, i64, u64, ptr } = ffi.FFIType;
  const { symbols: s } = ffi.dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    bind: { args: [i32, ptr, u32], returns: i32 },
    getsockname: { args: [i32, ptr, ptr], returns: i32 },
    setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
    sendmsg: { args: [i32, ptr, i32], returns: i64 },
    sendmmsg: { args: [i32, ptr, u32, i32], returns: i32 },
    recvmmsg: { args: [i32, ptr, u32, i32, ptr], returns: i32 },
    poll: { args: [ptr, u64, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    __errno_location: { args: [], returns: ptr },
  });
  const errnoAt = s.__errno_location();
  let preadv2: ((...args: unknown[]) => unknown) | undefined;
  try {
    // Apart: a libc without it must not cost the calls above.
    preadv2 = ffi.dlopen("libc.so.6", { preadv2: { args: [i32, ptr, i32, i64, i32], returns: i64 } }).symbols.preadv2;
  } catch { /* file reads stay on the pool */ }
  return {
    ffi: "bun:ffi",
    address: (bytes) => BigInt(ffi.ptr(bytes)),
    errno: () => ffi.read.i32(errnoAt, 0),
    socket: (d, t, p) => s.socket(d, t, p) as number,
    bind: (fd, sa, len) => s.bind(fd, sa, len) as number,
    getsockname: (fd, sa, len) => s.getsockname(fd, sa, len) as number,
    setsockopt: (fd, level, name, value, len) => s.setsockopt(fd, level, name, value, len) as number,
    sendmsg: (fd, msg, flags) => Number(s.sendmsg(fd, msg, flags)),
    sendmmsg: (fd, vec, n, flags) => s.sendmmsg(fd, vec, n, flags) as number,
    recvmmsg: (fd, vec, n, flags) => s.recvmmsg(fd, vec, n, flags, null) as number,
    poll: (fds, n, timeout) => s.poll(fds, n, timeout) as number,
    close: (fd) => s.close(fd) as number,
    preadv2: preadv2 && ((fd, iov, n, offset, flags) => Number(preadv2(fd, iov, n, offset, flags))),
  };
}
