/**
 * UDP sockets that no runtime socket object owns (Linux, with an FFI that can wait
 * for readability: koffi's libuv poll handle on Node). Where node:dgram makes a
 * callback, a Buffer and an address object per datagram received and a send call
 * with a request object per datagram sent, these make a few system calls per wake-up:
 * - what is queued when the socket wakes is drained by recvmmsg, a batch per call;
 * - whatever is sent while several datagrams of one wake-up are handled (the answers
 *   to a batch of ACKs: in single-port mode, to as many clients) leaves in one
 *   sendmmsg once the last is handled;
 * - a window (datagrams of one size, one after the other in its ring) is one UDP GSO
 *   send; where the kernel refuses that (a segment over the path's MTU), one by one.
 * Bytes that wait (for the end of a wake-up, or for writability after EAGAIN) are
 * copied first: they are views of a ring in WebAssembly memory, and a memory.grow
 * before they leave would detach them. A wake-up's answers are copied into one
 * staging buffer that every socket shares (only one socket's wake-up is handled at a
 * time): an ArrayBuffer per answer cost more than the copy (its allocation, its
 * sweeping, and its entry in the send path's table of buffer addresses); what still
 * waits once the wake-up is over gets copies of its own. A datagram the kernel refuses (a destination
 * it will not send to) is dropped as a lost one is: TFTP retransmits. The peer sees
 * the datagrams and their order that node:dgram would give it.
 */
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { type BatchDatagrams, EAGAIN, type Outgoing, ReceiveBatch, type UdpSocket } from "./native/datagrams.ts";
import type { Detection } from "./native/detect.ts";
import type { Watch } from "./native/libc.ts";
import { literalFamily } from "./native/sockaddr.ts";
import { eachRun } from "./native/window.ts";
import { windowStats } from "./gso_windows.ts";

/** What the batch calls carried (the metrics show them): datagrams per call is the batching. */
export const batchStats = { recvmmsgCalls: 0, recvmmsgDatagrams: 0, sendmmsgCalls: 0, sendmmsgDatagrams: 0 };

/** Datagrams one recvmmsg takes; a wake-up takes at most ROUNDS batches, then lets other sockets have theirs. */
const BATCH = 64;
const ROUNDS = 4;

/** A copy of bytes the kernel has not taken yet: one datagram (segment 0), or a run of `segment`-byte ones for one GSO send. */
interface Waiting extends Outgoing {
  segment: number;
}

/**
 * Copies of the answers a wake-up defers, one after the other in one buffer, which is
 * free again once they are sent. Bytes that do not fit get an ArrayBuffer of their own.
 */
export class Staging {
  readonly #bytes: Uint8Array;
  #used = 0;
  constructor(size: number) {
    this.#bytes = new Uint8Array(size);
  }
  copy(bytes: Uint8Array): Uint8Array {
    const at = this.#used;
    if (bytes.length > this.#bytes.length - at) return bytes.slice();
    this.#bytes.set(bytes, at);
    this.#used = at + bytes.length;
    return this.#bytes.subarray(at, this.#used);
  }
  holds(bytes: Uint8Array): boolean {
    return bytes.buffer === this.#bytes.buffer;
  }
  /** Every copy made so far is sent or has a copy of its own. */
  clear(): void {
    this.#used = 0;
  }
}

/** Room for a wake-up's answers: ROUNDS x BATCH lock-step blocks of 1468 bytes, or a few windows. */
const STAGING = 1 << 20;

const EMPTY = new Uint8Array(0);

/**
 * `base` with every socket made here, where this machine has the calls and an FFI that
 * waits for readability; else what `otherwise` makes of `base` (gso_windows.ts: GSO
 * sends on node:dgram's sockets, or node:dgram alone). The listening socket stays the
 * runtime's where node:cluster shares it with workers (`shareListening`). A socket passed
 * by descriptor (socket activation, a worker's own socket from its primary) is read here too.
 */
export async function withNativeSockets(base: Runtime, shareListening: boolean, otherwise: (base: Runtime) => Promise<Runtime>): Promise<Runtime> {
  let loaded: { native: BatchDatagrams | null; detection: Detection };
  try {
    loaded = await (await import("./native/detect.ts")).loadNative();
  } catch {
    return otherwise(base);
  }
  const { native, detection: d } = loaded;
  if (native === null || !(d.watch.ok && d.recvmmsg.ok && d.sendmmsg.ok && d.gso.ok)) return otherwise(base);
  return {
    ...base,
    datagramPath: { path: "gso", detail: `UDP GSO, recvmmsg and sendmmsg through ${d.ffi}` },
    ...nativeSockets(base, native, shareListening),
  };
}

/**
 * `bind` and `bindFd` for sockets of this module. The listening socket too, unless it must be
 * the runtime's (`shareListening`: node:cluster shares the primary's socket with its workers).
 */
export function nativeSockets(base: Runtime, native: BatchDatagrams, shareListening: boolean): Pick<Runtime, "bind" | "bindFd"> {
  // One receive batch and one staging buffer for all sockets: a wake-up's datagrams are handled, and
  // their answers sent, before the next wake-up.
  let batch: ReceiveBatch | null = null;
  let staging: Staging | null = null;
  const open = (socket: () => UdpSocket, onMessage: MessageHandler): Promise<DatagramTransport> => {
    batch ??= new ReceiveBatch(BATCH, 65536); // pages are touched only as large datagrams arrive
    staging ??= new Staging(STAGING); // likewise, as answers are deferred
    try {
      return Promise.resolve(new NativeUdp(native, socket(), onMessage, batch, staging));
    } catch (error) {
      return Promise.reject(error); // as a refused bind: EADDRINUSE, EACCES ...
    }
  };
  return {
    bind: (hostname, port, onMessage, maxDatagram) => {
      // An interface name as an IPv6 zone ("fe80::1%eth0") needs a lookup this module does not make.
      const own = literalFamily(hostname) !== null && !/%.*\D/.test(hostname);
      if ((shareListening && maxDatagram === undefined) || !own) return base.bind(hostname, port, onMessage, maxDatagram);
      return open(() => native.openUdp(hostname, port), onMessage);
    },
    bindFd: (fd, onMessage) => open(() => native.adopt(fd), onMessage),
  };
}

class NativeUdp implements DatagramTransport {
  readonly address: string;
  readonly port: number;
  readonly #native: BatchDatagrams;
  readonly #fd: number;
  readonly #onMessage: MessageHandler;
  readonly #batch: ReceiveBatch;
  readonly #staging: Staging;
  readonly #watch: Watch;
  /** Copies the kernel has not taken yet, in order, from #head. */
  #waiting: Waiting[] = [];
  #head = 0;
  /** Several datagrams of one wake-up are being handled: their answers wait for the last. */
  #deferring = false;
  /** The kernel's send buffer was full: sends wait for writability. */
  #blocked = false;
  /** The smallest segment size the kernel refused to cut by GSO here: runs of it go one by one. */
  #gsoRefused = Infinity;
  #closed = false;
  /** One datagram sent at once, without a new array per send. */
  readonly #one: Outgoing[] = [{ data: EMPTY, address: "", port: 0 }];

  constructor(native: BatchDatagrams, socket: UdpSocket, onMessage: MessageHandler, batch: ReceiveBatch, staging: Staging) {
    this.address = socket.address;
    this.port = socket.port;
    this.#native = native;
    this.#fd = socket.fd;
    this.#onMessage = onMessage;
    this.#batch = batch;
    this.#staging = staging;
    try {
      this.#watch = native.libc.watch!(socket.fd, (readable, writable) => this.#ready(readable, writable));
    } catch (error) {
      native.close(socket.fd);
      throw error;
    }
  }

  // The bytes are the kernel's or copied by the time these return: `done` runs at once.
  send(data: Uint8Array, port: number, address: string, done: () => void): void {
    if (!this.#closed) this.#offer(data, 0, port, address);
    done();
  }

  sendMany(datagrams: Uint8Array[], port: number, address: string, done: () => void): void {
    if (!this.#closed) eachRun(datagrams, (run, segment, count) => this.#offer(run, count > 1 ? segment : 0, port, address));
    for (let i = 0; i < datagrams.length; i++) done();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch.stop();
    this.#native.close(this.#fd);
    // What the kernel never took is lost, as node:dgram's queued sends are at close.
    this.#waiting = [];
    this.#head = 0;
  }

  /** One datagram (segment 0) or a run, sent now or, behind what waits, copied to wait its turn. */
  #offer(bytes: Uint8Array, segment: number, port: number, address: string): void {
    if (this.#deferring || this.#blocked || this.#head < this.#waiting.length) {
      this.#waiting.push({ data: this.#deferring ? this.#staging.copy(bytes) : bytes.slice(), segment, address, port });
      return;
    }
    if (segment === 0) {
      // One datagram (lock-step): to the kernel with nothing made for it.
      if (this.#sendOne(bytes, port, address) === EAGAIN) {
        this.#waiting.push({ data: bytes.slice(), segment, address, port });
        this.#block();
      }
      return;
    }
    const w: Waiting = { data: bytes, segment, address, port };
    if (this.#put(w) === EAGAIN) {
      this.#waiting.push({ ...w, data: w.data.slice() });
      this.#block();
    }
  }

  /**
   * Hands `w` to the kernel. 0: all of it went, or was refused (lost). EAGAIN: `w.data` is
   * cut to what is left. A run the kernel will not cut by GSO goes one datagram at a time.
   */
  #put(w: Waiting): number {
    if (w.segment > 0 && w.segment < this.#gsoRefused) {
      const r = this.#native.sendSegmented(this.#fd, w.data, w.segment, w.address, w.port);
      if (r.sent > 0) (windowStats.gsoSends++, (windowStats.gsoDatagrams += r.sent));
      w.data = w.data.subarray(Math.min(w.data.length, r.sent * w.segment));
      if (r.errno === 0 || w.data.length === 0) return 0;
      if (r.errno === EAGAIN) return EAGAIN;
      // EMSGSIZE (EINVAL before Linux 6.x): a segment over the path's MTU, which a plain send fragments.
      this.#gsoRefused = w.segment;
    }
    while (w.data.length > 0) {
      const size = w.segment > 0 ? Math.min(w.segment, w.data.length) : w.data.length;
      if (this.#sendOne(w.data.subarray(0, size), w.port, w.address) === EAGAIN) return EAGAIN;
      w.data = w.data.subarray(size); // sent, or refused: lost, as on the wire
    }
    return 0;
  }

  /** One datagram by sendmmsg. 0: sent, or refused (lost); EAGAIN: not taken. */
  #sendOne(data: Uint8Array, port: number, address: string): number {
    if (data.length === 0) return 0;
    const one = this.#one[0];
    one.data = data;
    one.address = address;
    one.port = port;
    const r = this.#native.sendmmsg(this.#fd, this.#one);
    one.data = EMPTY;
    if (r.errno === EAGAIN) return EAGAIN;
    if (r.sent > 0) (batchStats.sendmmsgCalls++, batchStats.sendmmsgDatagrams++);
    return 0;
  }

  #block(): void {
    this.#blocked = true;
    this.#watch.writable(true);
  }

  #ready(readable: boolean, writable: boolean): void {
    if (this.#closed) return;
    if (writable && this.#blocked) {
      this.#blocked = false;
      this.#watch.writable(false);
      this.#flush();
    }
    if (readable) this.#receive();
  }

  #receive(): void {
    const batch = this.#batch;
    for (let round = 0; round < ROUNDS && !this.#closed; round++) {
      const { received } = this.#native.recvmmsg(this.#fd, batch);
      if (received === 0) break;
      batchStats.recvmmsgCalls++;
      batchStats.recvmmsgDatagrams += received;
      // One datagram: its answer goes at once, with no copy. Several: the answers leave together.
      if (received > 1) this.#deferring = true;
      for (let i = 0; i < received && !this.#closed; i++) {
        const peer = batch.peer(i);
        try {
          this.#onMessage(batch.datagram(i), peer.address, peer.port);
        } catch (error) {
          // As from a node:dgram 'message' listener: an uncaught exception; the other datagrams are still handled.
          queueMicrotask(() => {
            throw error;
          });
        }
      }
      if (received < batch.capacity) break;
    }
    if (!this.#deferring) return;
    this.#deferring = false;
    try {
      if (!this.#blocked) this.#flush();
    } finally {
      // What waits (for writability, or after a send that threw) keeps its bytes; the staging buffer
      // is the next wake-up's.
      for (let i = this.#head; i < this.#waiting.length; i++) {
        const w = this.#waiting[i];
        if (this.#staging.holds(w.data)) w.data = w.data.slice();
      }
      this.#staging.clear();
    }
  }

  /** Hands the kernel the copies that wait: runs of single datagrams by sendmmsg, windows by GSO. */
  #flush(): void {
    const q = this.#waiting;
    while (this.#head < q.length && !this.#closed) {
      const w = q[this.#head];
      if (w.segment > 0) {
        if (this.#put(w) === EAGAIN) return this.#block();
        this.#head++;
        continue;
      }
      let end = this.#head + 1;
      while (end < q.length && q[end].segment === 0) end++;
      const r = this.#native.sendmmsg(this.#fd, q, this.#head, end);
      if (r.sent > 0) (batchStats.sendmmsgCalls++, (batchStats.sendmmsgDatagrams += r.sent));
      this.#head += r.sent;
      if (r.errno === EAGAIN) return this.#block();
      if (r.errno !== 0) this.#head++; // refused: lost, as on the wire
    }
    this.#waiting = [];
    this.#head = 0;
  }
}
