/**
 * libc through Deno.dlopen: needs the ffi permission (--allow-ffi or -A);
 * detect.ts asks before calling. Readability: a poll() run on Deno's blocking
 * thread pool (a "nonblocking" symbol), so the event loop never waits on it.
 */
import { POLLFD_SIZE, POLLIN, POLLOUT } from "./abi.ts";
import type { Libc } from "./libc.ts";

type Pointer = object | null;
interface DenoFfi {
  dlopen(path: string, symbols: Record<string, unknown>): { symbols: Record<string, (...args: unknown[]) => unknown> };
  UnsafePointer: { of(value: Uint8Array): Pointer; value(p: Pointer): bigint | number };
  UnsafePointerView: new (p: Pointer) => { getInt32(offset?: number): number };
}

/** How long one wait for readability may park its thread: stop() takes effect within this. */
const WATCH_SLICE_MS = 250;

export function denoLibc(): Libc {
  const D = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  const { symbols: s } = D.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
    sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
    recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
    pollOffThread: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
    close: { parameters: ["i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  });
  // errno is per thread and its place does not move: read it where the calls ran (the main thread).
  const errnoView = new D.UnsafePointerView(s.__errno_location() as Pointer);
  return {
    ffi: "Deno.dlopen",
    address: (bytes) => BigInt(D.UnsafePointer.value(D.UnsafePointer.of(bytes))),
    errno: () => errnoView.getInt32(0),
    socket: (d, t, p) => s.socket(d, t, p) as number,
    bind: (fd, sa, len) => s.bind(fd, sa, len) as number,
    getsockname: (fd, sa, len) => s.getsockname(fd, sa, len) as number,
    setsockopt: (fd, level, name, value, len) => s.setsockopt(fd, level, name, value, len) as number,
    sendmsg: (fd, msg, flags) => Number(s.sendmsg(fd, msg, flags)),
    sendmmsg: (fd, vec, n, flags) => s.sendmmsg(fd, vec, n, flags) as number,
    recvmmsg: (fd, vec, n, flags) => s.recvmmsg(fd, vec, n, flags, null) as number,
    poll: (fds, n, timeout) => s.poll(fds, n, timeout) as number,
    close: (fd) => s.close(fd) as number,
    watch(fd, onReady) {
      let stopped = false;
      const pollfd = new Uint8Array(POLLFD_SIZE);
      const view = new DataView(pollfd.buffer);
      view.setInt32(0, fd, true);
      view.setInt16(4, POLLIN, true);
      const next = (): void => {
        if (stopped) return;
        view.setInt16(6, 0, true);
        (s.pollOffThread(pollfd, 1, WATCH_SLICE_MS) as Promise<number>).then((ready) => {
          if (stopped) return;
          // The callback drains the socket, so the next poll() parks again instead of spinning.
          const revents = view.getInt16(6, true);
          if (ready > 0 && revents & (POLLIN | POLLOUT)) onReady((revents & POLLIN) !== 0, (revents & POLLOUT) !== 0);
          next();
        }, () => !stopped && setTimeout(next, WATCH_SLICE_MS));
      };
      next();
      return {
        // Takes effect at the next poll(), within WATCH_SLICE_MS.
        writable: (on) => view.setInt16(4, on ? POLLIN | POLLOUT : POLLIN, true),
        stop: () => void (stopped = true),
      };
    },
  };
}
