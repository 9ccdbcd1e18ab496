/**
 * libc through koffi (Node): an optional npm dependency whose package carries
 * prebuilt binaries, so it loads without install scripts or a C toolchain.
 * Readability comes from koffi's libuv poll handles: one per socket for the first
 * eight watched at a time, one on an epoll set of the rest (epoll_watch.ts).
 */
import { createRequire } from "node:module";
import process from "node:process";
import type { Libc, Watch } from "./libc.ts";
import { epollWatcher, eventLayout } from "./epoll_watch.ts";

interface PollEvents {
  readable: boolean;
  writable: boolean;
}

interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => number };
  address(value: unknown): bigint;
  errno(): number;
  node: {
    // koffi 3.3's index.d.ts omits the status argument its C++ passes first (src/koffi/src/uv.cc).
    poll(fd: number, opts: PollEvents, callback: (status: number, ev: PollEvents) => void): {
      start(opts: PollEvents, callback: (status: number, ev: PollEvents) => void): void;
      close(): void;
    };
  };
}

/** Throws when koffi is not installed or its binary does not load here. */
export function koffiLibc(): Libc {
  // createRequire: koffi is CommonJS, and a static import would make it a hard dependency of the bundle.
  const koffi = createRequire(import.meta.url)("koffi") as Koffi;
  const lib = koffi.load("libc.so.6");
  const socket = lib.func("int socket(int, int, int)");
  const bind = lib.func("int bind(int, void *, uint32_t)");
  const getsockname = lib.func("int getsockname(int, void *, void *)");
  const setsockopt = lib.func("int setsockopt(int, int, int, void *, uint32_t)");
  const sendmsg = lib.func("intptr_t sendmsg(int, void *, int)");
  const sendmmsg = lib.func("int sendmmsg(int, void *, unsigned int, int)");
  const recvmmsg = lib.func("int recvmmsg(int, void *, unsigned int, int, void *)");
  const poll = lib.func("int poll(void *, unsigned long, int)");
  const close = lib.func("int close(int)");
  const epoll_create1 = lib.func("int epoll_create1(int)");
  const epoll_ctl = lib.func("int epoll_ctl(int, int, int, void *)");
  const epoll_wait = lib.func("int epoll_wait(int, void *, int, int)");
  const EPOLL_CLOEXEC = 0o2000000;

  /** One libuv poll handle on `fd` (a second on the same descriptor fails): restarted with other events. */
  const pollOne = (fd: number, onReady: (readable: boolean, writable: boolean) => void): Watch => {
    const callback = (status: number, ev: PollEvents) => {
      if (status !== 0) return;
      try {
        onReady(ev.readable, ev.writable);
      } catch (error) {
        // Thrown into koffi, it would be swallowed and the handle would never call again (a readable
        // socket nobody reads: a spinning process). Thrown from a microtask, it is Node's uncaught exception.
        queueMicrotask(() => {
          throw error;
        });
      }
    };
    const handle = koffi.node.poll(fd, { readable: true, writable: false }, callback);
    return {
      writable: (on) => handle.start({ readable: true, writable: on }, callback),
      stop: () => handle.close(),
    };
  };
  let group: ((fd: number, onReady: (readable: boolean, writable: boolean) => void) => Watch) | null = null;
  let preadv2: ((...args: unknown[]) => number) | undefined;
  try {
    preadv2 = lib.func("intptr_t preadv2(int, void *, int, int64_t, int)");
  } catch { /* a libc without it: file reads stay on the pool */ }
  return {
    ffi: "koffi",
    address: (bytes) => koffi.address(bytes),
    errno: () => koffi.errno(),
    socket: (d, t, p) => socket(d, t, p),
    bind: (fd, sa, len) => bind(fd, sa, len),
    getsockname: (fd, sa, len) => getsockname(fd, sa, len),
    setsockopt: (fd, level, name, value, len) => setsockopt(fd, level, name, value, len),
    sendmsg: (fd, msg, flags) => Number(sendmsg(fd, msg, flags)),
    sendmmsg: (fd, vec, n, flags) => sendmmsg(fd, vec, n, flags),
    recvmmsg: (fd, vec, n, flags) => recvmmsg(fd, vec, n, flags, null),
    poll: (fds, n, timeout) => poll(fds, n, timeout),
    close: (fd) => close(fd),
    preadv2: preadv2 && ((fd, iov, n, offset, flags) => Number(preadv2(fd, iov, n, offset, flags))),
    watch(fd, onReady) {
      group ??= epollWatcher(
        {
          create: () => epoll_create1(EPOLL_CLOEXEC),
          ctl: (epfd, op, target, event) => epoll_ctl(epfd, op, target, event),
          wait: (epfd, events, max) => epoll_wait(epfd, events, max, 0),
          errno: () => koffi.errno(),
        },
        eventLayout(process.arch),
        pollOne,
      );
      return group(fd, onReady);
    },
  };
}
