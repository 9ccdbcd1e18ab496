/**
 * Batched datagrams on Linux over any runtime's FFI (libc.ts): a UDP socket
 * made and bound through libc, a window sent as one UDP GSO send, datagrams
 * to many peers in one sendmmsg, a readable socket drained by one recvmmsg.
 * Nothing here throws for what the kernel refuses: every send says how many
 * datagrams went out and which errno stopped the rest, so a caller can resend
 * exactly those (by this path or the runtime's per-datagram one).
 */
import {
  AF_INET, AF_INET6, CMSG_HEADER, CMSG_SEGMENT_LEN, CMSG_SEGMENT_SPACE, EAGAIN, EINTR, EINVAL, errnoName, IOVEC_SIZE,
  MAX_MMSG, MAX_UDP_PAYLOAD, MMSG_LEN, MMSGHDR_SIZE, MSG_CONTROL, MSG_CONTROLLEN, MSG_DONTWAIT, MSG_FLAGS, MSG_IOV,
  MSG_IOVLEN, MSG_NAME, MSG_NAMELEN, MSG_TRUNC, MSGHDR_SIZE, POLLFD_SIZE, POLLIN, SO_RCVBUF, SO_REUSEPORT, SO_SNDBUF, SOCK_CLOEXEC,
  SOCK_DGRAM, SOCK_NONBLOCK, SOCKADDR_SLOT, SOL_SOCKET, SOL_UDP, UDP_SEGMENT,
} from "./abi.ts";
import type { Libc } from "./libc.ts";
import { literalFamily, readSockaddr, writeSockaddr } from "./sockaddr.ts";

export interface UdpSocket {
  readonly fd: number;
  readonly family: 4 | 6;
  /** The bound address and port (port 0 asked for a free one: this is the one the kernel chose). */
  readonly address: string;
  readonly port: number;
}

export interface Outgoing {
  data: Uint8Array;
  address: string;
  port: number;
}

/**
 * `sent` datagrams went out, in order from the first; `errno` is 0 when all did, else
 * what the kernel said about the next one (EAGAIN: the send buffer is full, wait for
 * writability; EINVAL from a GSO send: too many segments for this kernel; EINVAL from
 * sendmmsg: that datagram's destination, e.g. port 0). Nothing after `sent` went out.
 */
export interface SendResult {
  sent: number;
  errno: number;
}

export interface ReceiveResult {
  /** Datagrams now in the batch, slots 0 to received - 1. */
  received: number;
  /** 0, or why nothing was received (EAGAIN: the queue is empty). */
  errno: number;
}

/** Room the kernel may use for queued datagrams; it caps these at net.core.{r,w}mem_max. */
const SOCKET_BUFFER = 4 * 1024 * 1024;

/** Datagrams one sendmmsg call is offered (more take more calls). */
const SEND_SLOTS = 64;
const SEND_IOVS = SEND_SLOTS * MMSGHDR_SIZE;
const SEND_NAMES = SEND_IOVS + SEND_SLOTS * IOVEC_SIZE;

const viewOf = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A 64-bit pointer held as a number (user-space addresses fit in 53 bits), written without a BigInt. */
export function setPointer(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 4294967296), true);
}

/** Memory recvmmsg fills: `capacity` slots of `slotSize` bytes, each with the sender's address. */
export class ReceiveBatch {
  readonly capacity: number;
  readonly slotSize: number;
  /** Length of each received datagram (cut at slotSize when `truncated`). */
  readonly lengths: Int32Array;
  readonly truncated: Uint8Array;
  /** @internal memory the kernel writes into, built once */
  readonly data: Uint8Array;
  /** @internal */
  readonly headers: Uint8Array;
  /** @internal */
  readonly names: Uint8Array;
  private readonly iovecs: Uint8Array;
  private readonly namesView: DataView;
  /** @internal */
  readonly headerView: DataView;
  private linked = false;

  constructor(capacity: number, slotSize = 65536) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_MMSG) throw new Error(`a receive batch holds 1 to ${MAX_MMSG} datagrams, not ${capacity}`);
    if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > 65536) throw new Error(`a receive slot holds 1 to 65536 bytes, not ${slotSize}`);
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.lengths = new Int32Array(capacity);
    this.truncated = new Uint8Array(capacity);
    this.data = new Uint8Array(capacity * slotSize);
    this.headers = new Uint8Array(capacity * MMSGHDR_SIZE);
    this.iovecs = new Uint8Array(capacity * IOVEC_SIZE);
    this.names = new Uint8Array(capacity * SOCKADDR_SLOT);
    this.namesView = viewOf(this.names);
    this.headerView = viewOf(this.headers);
  }

  /** The i-th datagram received: a view, valid until the next recvmmsg into this batch. */
  datagram(i: number): Uint8Array {
    return this.data.subarray(i * this.slotSize, i * this.slotSize + this.lengths[i]);
  }

  /** Who sent the i-th datagram (IPv4-mapped senders as plain IPv4). */
  peer(i: number): { address: string; port: number } {
    return readSockaddr(this.namesView, i * SOCKADDR_SLOT);
  }

  /** @internal the pointers inside the headers; the arrays never move, so once is enough */
  link(libc: Libc): void {
    if (this.linked) return;
    const h = this.headerView, iov = viewOf(this.iovecs);
    const data = libc.address(this.data), iovs = libc.address(this.iovecs), names = libc.address(this.names);
    for (let i = 0; i < this.capacity; i++) {
      iov.setBigUint64(i * IOVEC_SIZE, data + BigInt(i * this.slotSize), true);
      iov.setBigUint64(i * IOVEC_SIZE + 8, BigInt(this.slotSize), true);
      const o = i * MMSGHDR_SIZE;
      h.setBigUint64(o + MSG_NAME, names + BigInt(i * SOCKADDR_SLOT), true);
      h.setBigUint64(o + MSG_IOV, iovs + BigInt(i * IOVEC_SIZE), true);
      h.setBigUint64(o + MSG_IOVLEN, 1n, true);
      h.setUint32(o + MSG_NAMELEN, SOCKADDR_SLOT, true);
    }
    this.linked = true;
  }
}

export class BatchDatagrams {
  readonly libc: Libc;
  private readonly families = new Map<number, 4 | 6>();
  // One msghdr + iovec + sockaddr + control message, reused by every GSO send.
  private readonly gsoScratch = new Uint8Array(MSGHDR_SIZE + IOVEC_SIZE + SOCKADDR_SLOT + 4 + CMSG_SEGMENT_SPACE);
  private readonly gso = viewOf(this.gsoScratch);
  private readonly gsoIov = MSGHDR_SIZE;
  private readonly gsoName = MSGHDR_SIZE + IOVEC_SIZE;
  private readonly gsoControl = MSGHDR_SIZE + IOVEC_SIZE + SOCKADDR_SLOT + 4; // 8-aligned
  // SEND_SLOTS mmsghdrs, then their iovecs, then their sockaddrs: linked once, reused by every sendmmsg.
  private readonly mmsg = new Uint8Array(SEND_NAMES + SEND_SLOTS * SOCKADDR_SLOT);
  private readonly mmsgView = viewOf(this.mmsg);
  /**
   * The peer each sendmmsg slot's sockaddr holds (family, literal, port): in lock-step every
   * datagram of a transfer goes to one peer, and its sockaddr is written once, not per datagram.
   */
  private readonly slotFamily = new Uint8Array(SEND_SLOTS);
  private readonly slotAddress: string[] = new Array<string>(SEND_SLOTS).fill("");
  private readonly slotPort = new Int32Array(SEND_SLOTS).fill(-1);
  /**
   * Where each buffer's memory starts, by its ArrayBuffer: a datagram's pointer is its
   * buffer's plus its offset, without a call into the FFI per datagram. A buffer's memory
   * stays where it is while the buffer lives (reading `.buffer` first moves a small view's
   * bytes out of the JavaScript heap, for good); a WebAssembly memory that grows has a new
   * ArrayBuffer, looked up afresh.
   */
  private readonly bases = new WeakMap<ArrayBufferLike, number>();
  /** Most segments one GSO send took on this kernel, learnt from EINVAL (UDP_MAX_SEGMENTS: 64, or 128 since Linux 6.9). */
  maxSegments = 128;

  constructor(libc: Libc) {
    this.libc = libc;
    const base = libc.address(this.gsoScratch);
    const g = this.gso;
    g.setBigUint64(MSG_NAME, base + BigInt(this.gsoName), true);
    g.setBigUint64(MSG_IOV, base + BigInt(this.gsoIov), true);
    g.setBigUint64(MSG_IOVLEN, 1n, true);
    g.setBigUint64(MSG_CONTROL, base + BigInt(this.gsoControl), true);
    g.setBigUint64(MSG_CONTROLLEN, BigInt(CMSG_SEGMENT_SPACE), true);
    g.setBigUint64(this.gsoControl, BigInt(CMSG_SEGMENT_LEN), true);
    g.setInt32(this.gsoControl + 8, SOL_UDP, true);
    g.setInt32(this.gsoControl + 12, UDP_SEGMENT, true);
    const m = this.mmsgView, mBase = libc.address(this.mmsg);
    for (let i = 0; i < SEND_SLOTS; i++) {
      const o = i * MMSGHDR_SIZE;
      m.setBigUint64(o + MSG_NAME, mBase + BigInt(SEND_NAMES + i * SOCKADDR_SLOT), true);
      m.setBigUint64(o + MSG_IOV, mBase + BigInt(SEND_IOVS + i * IOVEC_SIZE), true);
      m.setBigUint64(o + MSG_IOVLEN, 1n, true);
    }
  }

  /** @internal The address of `bytes` (not empty) in memory. */
  pointer(bytes: Uint8Array): number {
    const buffer = bytes.buffer;
    let base = this.bases.get(buffer);
    if (base === undefined) {
      base = Number(this.libc.address(bytes)) - bytes.byteOffset;
      this.bases.set(buffer, base);
    }
    return base + bytes.byteOffset;
  }

  private fail(call: string): never {
    const code = errnoName(this.libc.errno());
    // `code` as node:dgram's errors carry it (the CLI tells EACCES on a low port apart by it).
    throw Object.assign(new Error(`${call}: ${code}`), { code });
  }

  /**
   * A UDP socket bound to `address` (an IP literal) and `port` (0: any free one),
   * non-blocking and close-on-exec. Throws with the failing call and errno.
   * `reusePort`: one of a group of sockets on the same address and port (SO_REUSEPORT),
   * among which the kernel spreads peers by a hash of their address and port.
   */
  openUdp(address: string, port: number, reusePort = false): UdpSocket {
    const family = literalFamily(address);
    if (!family) throw new Error(`"${address}" is not an IP literal`);
    const { libc } = this;
    const fd = libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) this.fail("socket()");
    try {
      const size = new Uint8Array(4);
      viewOf(size).setInt32(0, SOCKET_BUFFER, true);
      // Failure only means the default buffers: slower under bursts, not wrong.
      libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
      libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4);
      const on = new Uint8Array([1, 0, 0, 0]);
      if (reusePort && libc.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, on, 4) !== 0) this.fail("setsockopt(SO_REUSEPORT)");
      const sa = new Uint8Array(SOCKADDR_SLOT);
      const length = writeSockaddr(viewOf(sa), 0, family, address, port);
      if (libc.bind(fd, sa, length) !== 0) this.fail(`bind(${address}:${port})`);
      return this.adopt(fd); // the port the kernel chose for port 0
    } catch (error) {
      libc.close(fd);
      throw error;
    }
  }

  /**
   * A UDP socket this process was given open (socket activation, a worker's socket from
   * its primary), as openUdp() describes it. Sends and receives name MSG_DONTWAIT, so a
   * blocking descriptor is fine. Throws for a descriptor that is not a bound socket.
   */
  adopt(fd: number): UdpSocket {
    const sa = new Uint8Array(SOCKADDR_SLOT), len = new Uint8Array(4);
    viewOf(len).setUint32(0, SOCKADDR_SLOT, true);
    if (this.libc.getsockname(fd, sa, len) !== 0) this.fail(`getsockname(${fd})`);
    const family = viewOf(sa).getUint16(0, true) === AF_INET6 ? 6 : 4;
    const bound = readSockaddr(viewOf(sa), 0);
    this.families.set(fd, family);
    return { fd, family, address: bound.address, port: bound.port };
  }

  /** Closes a socket this module opened (one handed to a runtime is closed through the runtime). */
  close(fd: number): void {
    this.families.delete(fd);
    this.libc.close(fd);
  }

  /**
   * The family of a socket this module did not open (Deno's, found by its descriptor): its
   * number may have been another family's socket before, whose entry would still be here.
   */
  remember(fd: number, family: 4 | 6): void {
    this.families.set(fd, family);
  }

  private familyOf(fd: number): 4 | 6 {
    return this.families.get(fd) ?? this.adopt(fd).family;
  }

  /**
   * Sets the socket's default GSO segment size (setsockopt SOL_UDP, UDP_SEGMENT): what
   * a plain send on it is cut into. sendGso() names the size on each send instead, so
   * it does not depend on this; this is also how detect() asks the kernel for GSO.
   */
  enableGso(fd: number, segmentSize: number): { ok: boolean; errno: number } {
    const value = new Uint8Array(4);
    viewOf(value).setInt32(0, segmentSize, true);
    if (this.libc.setsockopt(fd, SOL_UDP, UDP_SEGMENT, value, 4) === 0) return { ok: true, errno: 0 };
    return { ok: false, errno: this.libc.errno() };
  }

  /**
   * One send of `buffer`, which the kernel cuts into datagrams of `segmentSize`
   * bytes (the last may be shorter) to `address`:`port`: a window laid out as
   * [header][block][header][block]... The kernel takes all of it or none: `sent` is
   * the segment count or 0. Too many segments or bytes for one send: EINVAL or
   * EMSGSIZE, see sendSegmented().
   */
  sendGso(fd: number, buffer: Uint8Array, segmentSize: number, address: string, port: number): SendResult {
    if (!Number.isInteger(segmentSize) || segmentSize < 1 || segmentSize > 65535) throw new Error(`segment size ${segmentSize} is not 1-65535`);
    if (buffer.length === 0) return { sent: 0, errno: 0 };
    const g = this.gso;
    let nameLength: number;
    try {
      nameLength = writeSockaddr(g, this.gsoName, this.familyOf(fd), address, port);
    } catch {
      return { sent: 0, errno: EINVAL }; // no literal of this socket's family: as the kernel refuses one
    }
    g.setUint32(MSG_NAMELEN, nameLength, true);
    setPointer(g, this.gsoIov, this.pointer(buffer));
    setPointer(g, this.gsoIov + 8, buffer.length);
    g.setUint16(this.gsoControl + CMSG_HEADER, segmentSize, true);
    g.setInt32(MSG_FLAGS, 0, true);
    let r: number;
    do r = this.libc.sendmsg(fd, this.gsoScratch, MSG_DONTWAIT);
    while (r < 0 && this.libc.errno() === EINTR);
    if (r < 0) return { sent: 0, errno: this.libc.errno() };
    return { sent: Math.ceil(buffer.length / segmentSize), errno: 0 };
  }

  /**
   * sendGso() of any number of segments: as many GSO sends as the kernel's limits
   * need (segments per send learnt from EINVAL and kept in maxSegments; at most
   * 65,507 bytes per send). Stops at the first other refusal: `sent` segments went out.
   */
  sendSegmented(fd: number, buffer: Uint8Array, segmentSize: number, address: string, port: number): SendResult {
    const total = Math.ceil(buffer.length / segmentSize);
    let sent = 0;
    let limit = this.maxSegments;
    let lowered = false;
    while (sent < total) {
      const room = Math.max(1, Math.floor(MAX_UDP_PAYLOAD / segmentSize));
      const count = Math.min(total - sent, limit, room);
      const start = sent * segmentSize;
      const chunk = buffer.subarray(start, Math.min(buffer.length, start + count * segmentSize));
      const r = this.sendGso(fd, chunk, segmentSize, address, port);
      if (r.errno === EINVAL && count > 1) {
        limit = count >> 1;
        lowered = true;
        continue;
      }
      if (r.errno !== 0) return { sent, errno: r.errno };
      // Kept only once a smaller send went through: an EINVAL for a bad destination must not lower it.
      if (lowered) (this.maxSegments = limit), (lowered = false);
      sent += count;
    }
    return { sent, errno: 0 };
  }

  /**
   * Datagrams `from` to `to` - 1 of `datagrams`, each to its own destination, in as few
   * sendmmsg calls as the kernel allows (it may take fewer than offered: the rest go in the
   * next call). A destination that is no IP literal or port stops it there with EINVAL, as
   * the kernel does for one it refuses (port 0).
   */
  sendmmsg(fd: number, datagrams: readonly Outgoing[], from = 0, to = datagrams.length): SendResult {
    if (to <= from) return { sent: 0, errno: 0 };
    const family = this.familyOf(fd);
    const v = this.mmsgView;
    let sent = 0;
    for (let at = from; at < to;) {
      let count = Math.min(to - at, SEND_SLOTS);
      // Only what differs per datagram: the pointers between the structs were set once.
      for (let i = 0; i < count; i++) {
        const d = datagrams[at + i];
        const o = i * MMSGHDR_SIZE, iov = SEND_IOVS + i * IOVEC_SIZE;
        if (d.port !== this.slotPort[i] || d.address !== this.slotAddress[i] || family !== this.slotFamily[i]) {
          let nameLength: number;
          try {
            nameLength = writeSockaddr(v, SEND_NAMES + i * SOCKADDR_SLOT, family, d.address, d.port);
          } catch {
            this.slotPort[i] = -1; // its sockaddr may be half written
            if (i === 0) return { sent, errno: EINVAL };
            count = i; // those before it go now; the next call stops at it
            break;
          }
          v.setUint32(o + MSG_NAMELEN, nameLength, true);
          this.slotFamily[i] = family;
          this.slotAddress[i] = d.address;
          this.slotPort[i] = d.port;
        }
        setPointer(v, iov, d.data.length > 0 ? this.pointer(d.data) : 0);
        setPointer(v, iov + 8, d.data.length);
      }
      const r = this.libc.sendmmsg(fd, this.mmsg, count, MSG_DONTWAIT);
      if (r < 0) {
        const errno = this.libc.errno();
        if (errno === EINTR) continue;
        return { sent, errno };
      }
      sent += r;
      at += r;
    }
    return { sent, errno: 0 };
  }

  /** What is queued on `fd`, up to the batch's capacity, without waiting. */
  recvmmsg(fd: number, batch: ReceiveBatch): ReceiveResult {
    batch.link(this.libc);
    const h = batch.headerView;
    let r: number;
    do r = this.libc.recvmmsg(fd, batch.headers, batch.capacity, MSG_DONTWAIT);
    while (r < 0 && this.libc.errno() === EINTR);
    if (r < 0) return { received: 0, errno: this.libc.errno() };
    for (let i = 0; i < r; i++) {
      const o = i * MMSGHDR_SIZE;
      batch.lengths[i] = h.getUint32(o + MMSG_LEN, true);
      batch.truncated[i] = h.getInt32(o + MSG_FLAGS, true) & MSG_TRUNC ? 1 : 0;
      // The kernel wrote these of the slots it filled only: ready for the next call.
      h.setUint32(o + MSG_NAMELEN, SOCKADDR_SLOT, true);
      h.setInt32(o + MSG_FLAGS, 0, true);
    }
    return { received: r, errno: 0 };
  }

  /**
   * Whether `fd` has a datagram queued, waiting at most `timeoutMs`. It blocks the
   * thread: for probes and tests; a server waits with watch() or a runtime socket.
   */
  waitReadable(fd: number, timeoutMs: number): boolean {
    const p = new Uint8Array(POLLFD_SIZE), v = viewOf(p);
    v.setInt32(0, fd, true);
    v.setInt16(4, POLLIN, true);
    const r = this.libc.poll(p, 1, timeoutMs);
    return r > 0 && (v.getInt16(6, true) & POLLIN) !== 0;
  }
}

export { EAGAIN, EINVAL, errnoName };
