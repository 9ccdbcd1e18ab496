/**
 * libc through Deno.dlopen: needs the ffi permission (--allow-ffi or -A);
 * detect.ts asks before calling. No `watch`: Deno's own sockets are read by Deno
 * (a wait of ours would run on its blocking thread pool, a thread hop per wake-up,
 * which made lock-step dearer: adapters/deno.ts). `descriptors` finds the
 * descriptor of a socket Deno.listenDatagram made (deno_fd.ts).
 */
import { DescriptorFinder } from "./deno_fd.ts";
import type { Libc } from "./libc.ts";

export interface DenoLibc extends Libc {
  readonly descriptors: DescriptorFinder;
}

type Pointer = object | null;
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Record<string, (...args: unknown[]) => unknown> };
  UnsafePointer: { of(value: Uint8Array): Pointer; value(p: Pointer): bigint | number };
  UnsafePointerView: new (p: Pointer) => { getInt32(offset?: number): number };
  readDirSync(path: string): Iterable<{ name: string }>;
}

const EFD_CLOEXEC = 0o2000000;

export function denoLibc(): DenoLibc {
  const D = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  const { symbols: s } = D.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
    dup: { parameters: ["i32"], result: "i32" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
    sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
    recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    eventfd: { parameters: ["u32", "i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
    // Optional: a libc without it keeps the calls above (file reads stay on the pool).
    preadv2: { parameters: ["i32", "buffer", "i32", "i64", "i32"], result: "isize", optional: true },
  });
  // errno is per thread and its place does not move: read it where the calls ran (the main thread).
  const errnoView = new D.UnsafePointerView(s.__errno_location() as Pointer);
  const errno = () => errnoView.getInt32(0);
  let anchor = -1;
  const descriptors = new DescriptorFinder({
    dup: (fd) => s.dup(fd) as number,
    close: (fd) => s.close(fd) as number,
    getsockname: (fd, sa, len) => s.getsockname(fd, sa, len) as number,
    getsockopt: (fd, level, name, value, len) => s.getsockopt(fd, level, name, value, len) as number,
    // An eventfd nobody writes: one descriptor, kept, for dup() to copy.
    anchor: () => (anchor >= 0 ? anchor : (anchor = s.eventfd(0, EFD_CLOEXEC) as number)),
    listOpen: () => {
      try {
        return [...D.readDirSync("/proc/self/fd")].map((e) => Number(e.name)).filter(Number.isInteger);
      } catch {
        return []; // no /proc, or no read permission
      }
    },
  });
  return {
    descriptors,
    ffi: "Deno.dlopen",
    address: (bytes) => BigInt(D.UnsafePointer.value(D.UnsafePointer.of(bytes))),
    errno,
    socket: (d, t, p) => s.socket(d, t, p) as number,
    bind: (fd, sa, len) => s.bind(fd, sa, len) as number,
    getsockname: (fd, sa, len) => s.getsockname(fd, sa, len) as number,
    setsockopt: (fd, level, name, value, len) => s.setsockopt(fd, level, name, value, len) as number,
    sendmsg: (fd, msg, flags) => Number(s.sendmsg(fd, msg, flags)),
    sendmmsg: (fd, vec, n, flags) => s.sendmmsg(fd, vec, n, flags) as number,
    recvmmsg: (fd, vec, n, flags) => s.recvmmsg(fd, vec, n, flags, null) as number,
    poll: (fds, n, timeout) => s.poll(fds, n, timeout) as number,
    close: (fd) => s.close(fd) as number,
    preadv2: s.preadv2 ? (fd, iov, n, offset, flags) => Number(s.preadv2(fd, iov, n, offset, flags)) : undefined,
  };
}
