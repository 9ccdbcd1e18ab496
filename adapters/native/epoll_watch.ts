/**
 * Many descriptors watched through one epoll set, which the runtime watches as a
 * single descriptor. With a socket per transfer, a wake-up finds many sockets ready
 * at once (in a storm, most of them): one callback from the runtime and one
 * epoll_wait then cover them all, where a runtime poll handle per socket made a
 * native-to-JavaScript call each, with an event object and a microtask checkpoint.
 * For a few sockets the set costs more than it saves (an epoll_wait per wake-up that
 * finds one socket ready: 6% more CPU per block in lock-step), so the first DIRECT
 * sockets watched at a time (the listening socket, the transfers of a quiet server)
 * keep runtime handles of their own, and only the ones beyond share the set.
 * Level-triggered, as the runtime's poll handles are: a socket left with datagrams
 * queued (a wake-up takes a bounded number) is reported again.
 */
import type { Watch } from "./libc.ts";

/** The calls this needs, as the FFI binds them (-1 on failure, then errno()). */
export interface EpollCalls {
  /** epoll_create1(EPOLL_CLOEXEC). */
  create(): number;
  ctl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** Never with a timeout: only what is ready now. */
  wait(epfd: number, events: Uint8Array, max: number): number;
  errno(): number;
}

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EINTR = 4;

/** Events taken per epoll_wait; more ready than this are reported by the next wake-up. */
const MAX_EVENTS = 128;
/** Sockets watched at a time by runtime handles of their own, before the set is used. */
export const DIRECT = 8;

/** struct epoll_event: packed on x86_64 (12 bytes, data at 4), naturally aligned elsewhere (16, data at 8). */
export interface EventLayout {
  size: number;
  data: number;
}
export const eventLayout = (arch: string): EventLayout => (arch === "x64" ? { size: 12, data: 4 } : { size: 16, data: 8 });

/**
 * A `watch` for many descriptors. `watchOne` is the runtime's own watch: for the first
 * `direct` sockets watched at a time, and for the epoll descriptor (made at the first
 * socket beyond them; a watch then throws if it cannot be made, as a refused bind would).
 * `firstId`: where the registrations' numbers start (tests start them past 2^32).
 */
export function epollWatcher(
  calls: EpollCalls,
  layout: EventLayout,
  watchOne: (fd: number, onReady: (readable: boolean, writable: boolean) => void) => Watch,
  direct = DIRECT,
  firstId = 1,
): (fd: number, onReady: (readable: boolean, writable: boolean) => void) => Watch {
  let own = 0;
  let shared: ((fd: number, onReady: (readable: boolean, writable: boolean) => void) => Watch) | null = null;
  return (fd, onReady) => {
    if (own >= direct) return (shared ??= epollSet(calls, layout, watchOne, firstId))(fd, onReady);
    const w = watchOne(fd, onReady);
    own++;
    let stopped = false;
    return {
      writable: (on) => {
        if (!stopped) w.writable(on); // koffi would restart a closed handle
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        own--;
        w.stop();
      },
    };
  };
}

function epollSet(
  calls: EpollCalls,
  layout: EventLayout,
  watchOne: (fd: number, onReady: (readable: boolean) => void) => Watch,
  firstId: number,
): (fd: number, onReady: (readable: boolean, writable: boolean) => void) => Watch {
  const epfd = calls.create();
  if (epfd < 0) throw new Error(`epoll_create1: errno ${calls.errno()}`);
  const events = new Uint8Array(MAX_EVENTS * layout.size);
  const ev = new DataView(events.buffer);
  const one = new Uint8Array(layout.size);
  const oneView = new DataView(one.buffer);
  // A number per registration, never reused: an event still in the array for a descriptor
  // stopped (and its number taken by a new socket) during the same wake-up finds nobody.
  const members = new Map<number, (readable: boolean, writable: boolean) => void>();
  let next = firstId;
  let runtimeWatch: Watch | null = null;

  // The id fills epoll_data's 64 bits as far as a double holds integers (2^53): no wrap in any uptime.
  const control = (op: number, fd: number, mask: number, id: number): void => {
    oneView.setUint32(0, mask, true);
    oneView.setUint32(layout.data, id >>> 0, true);
    oneView.setUint32(layout.data + 4, Math.floor(id / 2 ** 32), true);
    if (calls.ctl(epfd, op, fd, one) < 0) throw new Error(`epoll_ctl: errno ${calls.errno()}`);
  };

  const dispatch = (): void => {
    let n: number;
    do n = calls.wait(epfd, events, MAX_EVENTS);
    while (n < 0 && calls.errno() === EINTR);
    for (let i = 0; i < n; i++) {
      const at = i * layout.size;
      const mask = ev.getUint32(at, true);
      const onReady = members.get(ev.getUint32(at + layout.data, true) + ev.getUint32(at + layout.data + 4, true) * 2 ** 32);
      if (onReady === undefined) continue;
      try {
        // An error or hang-up is reported as readable: the read that follows meets it.
        onReady((mask & (EPOLLIN | EPOLLERR | EPOLLHUP)) !== 0, (mask & EPOLLOUT) !== 0);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  };

  return (fd: number, onReady: (readable: boolean, writable: boolean) => void): Watch => {
    // The runtime's handle first: if it cannot be made, nothing is left registered.
    runtimeWatch ??= watchOne(epfd, (readable) => readable && dispatch());
    const id = next++;
    try {
      control(EPOLL_CTL_ADD, fd, EPOLLIN, id);
    } catch (error) {
      if (members.size === 0) (runtimeWatch.stop(), (runtimeWatch = null));
      throw error;
    }
    members.set(id, onReady);
    let stopped = false;
    return {
      writable: (on) => {
        if (!stopped) control(EPOLL_CTL_MOD, fd, on ? EPOLLIN | EPOLLOUT : EPOLLIN, id);
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        members.delete(id);
        // Before the caller closes fd: the set would keep it while a duplicate of it lives.
        calls.ctl(epfd, EPOLL_CTL_DEL, fd, one);
        // Nothing watched: the runtime's handle goes too, or it would keep the process alive.
        if (members.size === 0 && runtimeWatch !== null) {
          runtimeWatch.stop();
          runtimeWatch = null;
        }
      },
    };
  };
}
