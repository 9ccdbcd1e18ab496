/**
 * Readiness for every socket of a process that no runtime socket object owns, from
 * one epoll instance whose epoll_wait runs off the main thread (Deno: a "nonblocking"
 * FFI symbol, on Deno's blocking thread pool). One wait is outstanding at a time, for
 * all sockets: one parked thread per process, not one per socket. Level-triggered, so
 * a socket left with datagrams queued (its callback took a bounded share) is reported
 * again by the next wait. An eventfd in the set ends the wait when the last socket
 * stops, so that no call is left pending to keep the process alive.
 */
import process from "node:process";
import type { Watch } from "./libc.ts";

export interface EpollCalls {
  epollCreate1(flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** epoll_wait, without blocking the calling thread; resolves with its result. */
  epollWaitOffThread(epfd: number, events: Uint8Array, max: number, timeoutMs: number): Promise<number>;
  eventfd(initval: number, flags: number): number;
  write(fd: number, bytes: Uint8Array, length: number): number;
  read(fd: number, bytes: Uint8Array, length: number): number;
  errno(): number;
}

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
/** struct epoll_event { uint32_t events; uint64_t data; }: packed on x86_64, padded to 16 on aarch64. */
const EVENT_SIZE = process.arch === "x64" ? 12 : 16;
const EVENT_DATA = process.arch === "x64" ? 4 : 8;
/** Events one wait returns; more ready sockets are reported by the next wait. */
const MAX_EVENTS = 256;

type OnReady = (readable: boolean, writable: boolean) => void;

export class EpollLoop {
  readonly #calls: EpollCalls;
  readonly #epfd: number;
  readonly #wake: number;
  readonly #events = new Uint8Array(MAX_EVENTS * EVENT_SIZE);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #ctl = new Uint8Array(EVENT_SIZE);
  readonly #ctlView = new DataView(this.#ctl.buffer);
  readonly #watchers = new Map<number, OnReady>();
  #waiting = false;
  /** The wake-up was written and not read yet. */
  #woken = false;

  constructor(calls: EpollCalls) {
    this.#calls = calls;
    this.#epfd = calls.epollCreate1(EPOLL_CLOEXEC);
    if (this.#epfd < 0) throw new Error(`epoll_create1: errno ${calls.errno()}`);
    this.#wake = calls.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wake < 0) throw new Error(`eventfd: errno ${calls.errno()}`);
    this.#control(EPOLL_CTL_ADD, this.#wake, EPOLLIN);
  }

  /** Calls `onReady` while `fd` is readable (and, once asked, writable), until stop(). */
  watch(fd: number, onReady: OnReady): Watch {
    if (this.#watchers.has(fd)) throw new Error(`descriptor ${fd} is watched already`);
    this.#control(EPOLL_CTL_ADD, fd, EPOLLIN);
    this.#watchers.set(fd, onReady);
    this.#arm();
    let stopped = false;
    return {
      writable: (on) => {
        if (!stopped) this.#control(EPOLL_CTL_MOD, fd, on ? EPOLLIN | EPOLLOUT : EPOLLIN);
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        this.#watchers.delete(fd);
        this.#calls.epollCtl(this.#epfd, EPOLL_CTL_DEL, fd, this.#ctl); // before the caller closes fd
        // Nothing left to watch: end the pending wait, which is then not renewed.
        if (this.#watchers.size === 0 && this.#waiting && !this.#woken) {
          this.#woken = true;
          const one = new Uint8Array(8);
          one[0] = 1;
          this.#calls.write(this.#wake, one, 8);
        }
      },
    };
  }

  #control(op: number, fd: number, events: number): void {
    this.#ctlView.setUint32(0, events, true);
    this.#ctlView.setUint32(EVENT_DATA, fd, true);
    this.#ctlView.setUint32(EVENT_DATA + 4, 0, true);
    if (this.#calls.epollCtl(this.#epfd, op, fd, this.#ctl) !== 0) throw new Error(`epoll_ctl(${fd}): errno ${this.#calls.errno()}`);
  }

  #arm(): void {
    if (this.#waiting || this.#watchers.size === 0) return;
    this.#waiting = true;
    this.#calls.epollWaitOffThread(this.#epfd, this.#events, MAX_EVENTS, -1).then(
      (n) => this.#dispatch(n),
      () => this.#dispatch(0),
    );
  }

  #dispatch(n: number): void {
    this.#waiting = false;
    try {
      for (let i = 0; i < n; i++) {
        const o = i * EVENT_SIZE;
        const events = this.#eventsView.getUint32(o, true);
        const fd = this.#eventsView.getUint32(o + EVENT_DATA, true);
        if (fd === this.#wake) {
          this.#calls.read(this.#wake, new Uint8Array(8), 8);
          this.#woken = false;
          continue;
        }
        // Gone since the wait returned (stopped by an earlier callback): nothing to tell.
        const onReady = this.#watchers.get(fd);
        // An error queued on the socket (an ICMP report) is read, and cleared, as a receive.
        if (onReady) onReady((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) !== 0, (events & EPOLLOUT) !== 0);
      }
    } finally {
      this.#arm();
    }
  }
}
