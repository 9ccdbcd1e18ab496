/**
 * One live transfer: drives a session (core/session.ts) with a transport,
 * a clock, a block source or an upload stream. It moves bytes and nothing
 * else; the session decides.
 *
 * Two rules about memory live here:
 * - a ring slot is refilled only once every datagram handed to the transport
 *   has been reported sent (adapters may send the very bytes later);
 * - the ring is released only once no fill is writing into it.
 */
import { decode, encodeError } from "./codec.ts";
import { allocate, release } from "./arena.ts";
import type { BlockSource, UploadStream } from "./body.ts";
import { ErrorCode } from "./packet.ts";
import { type ReceiveSession, SendSession } from "./session.ts";
import type { DatagramTransport } from "./transport.ts";

export interface TransferInit {
  kind: "read" | "write";
  address: string;
  port: number;
  filename: string;
  session: SendSession | ReceiveSession;
  transport: DatagramTransport;
  /** False in single-port mode, where the transport is the server's own. */
  ownsTransport: boolean;
  now: () => number;
  onFinished: (t: Transfer) => void;
  /**
   * A one-shot timer, for the pause between two bursts of a window (PACE_MS, far
   * below the ticker's period). Without it the next tick sends the next burst.
   */
  later?: (ms: number, fn: () => void) => { stop(): void };
  /** Called once, when the peer first answers (see Session.peerConfirmed). */
  onConfirmed?: (t: Transfer) => void;
  onError: (error: unknown, context: string) => void;
  source?: BlockSource;
  ring?: { ptr: number; bytes: number };
  upload?: UploadStream;
}

export class Transfer {
  readonly kind: "read" | "write";
  readonly address: string;
  readonly port: number;
  readonly filename: string;
  readonly session: SendSession | ReceiveSession;
  readonly transport: DatagramTransport;
  readonly startedAt: number;
  readonly upload?: UploadStream;
  #init: TransferInit;
  #inflight = 0;
  #fillWaiting = false;
  #disposed = false;
  #confirmed = false;
  #paceTimer: { stop(): void } | null = null;
  #ringHeld: { ptr: number; bytes: number } | undefined;
  #onSent = () => {
    this.#inflight--;
    if (this.#inflight > 0) return;
    if (this.#disposed) {
      this.#releaseRing();
      this.#closeTransport();
    } else if (this.#fillWaiting) this.#startFill();
  };

  constructor(init: TransferInit) {
    this.#init = init;
    this.kind = init.kind;
    this.address = init.address;
    this.port = init.port;
    this.filename = init.filename;
    this.session = init.session;
    this.transport = init.transport;
    this.upload = init.upload;
    this.#ringHeld = init.ring;
    this.startedAt = init.now();
  }

  start(): void {
    this.act((now) => this.session.start(now));
  }

  /** Runs a step on the session, then sends what it produced and reacts to its new state. */
  act(step: (now: number) => void): void {
    if (this.#disposed) return;
    const now = this.#init.now();
    step(now);
    this.#after();
  }

  /** A datagram arrived on this transfer's port (or for its key in single-port mode). */
  receive(data: Uint8Array, address: string, port: number): void {
    if (this.#disposed) return;
    if (port !== this.port || address !== this.address) {
      // Another TID: tell it, and carry on undisturbed (RFC 1350).
      if (data.length >= 2 && !(data[0] === 0 && data[1] === 5)) {
        this.transport.send(encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), port, address, () => {});
      }
      return;
    }
    const packet = decode(data);
    if (packet.op === 0) return; // a mangled datagram from the peer is dropped, not fatal
    this.act((now) => this.session.receive(packet, now));
  }

  tick(now: number): void {
    const s = this.session;
    if (!this.#disposed && now >= s.wakeAt) {
      this.session.handleTimer(now);
      this.#after();
    }
  }

  #after(): void {
    if (!this.#confirmed && this.session.peerConfirmed) {
      this.#confirmed = true;
      this.#init.onConfirmed?.(this);
    }
    const out = this.session.takeOutgoing();
    if (out.length > 1 && this.transport.sendMany) {
      this.#inflight += out.length;
      this.transport.sendMany(out, this.port, this.address, this.#onSent);
    } else {
      // Counted before the first send: an adapter may report a send done at once, and
      // in-flight reaching zero midway would let a fill (or a ring move) touch the rest.
      this.#inflight += out.length;
      for (const datagram of out) this.transport.send(datagram, this.port, this.address, this.#onSent);
    }
    if (this.session.finished) this.#dispose();
    else if (this.session instanceof SendSession) {
      this.#startFill();
      this.#pace(this.session);
    }
  }

  /** Wakes the session when its next burst may go (see SendSession.burst). */
  #pace(session: SendSession): void {
    const later = this.#init.later;
    if (session.paceAt === Infinity || this.#paceTimer !== null || later === undefined || this.#disposed) return;
    this.#paceTimer = later(Math.max(0, session.paceAt - this.#init.now()), () => {
      this.#paceTimer = null;
      this.act((now) => session.handleTimer(now));
    });
  }

  #startFill(): void {
    if (this.#inflight > 0) {
      this.#fillWaiting = true; // ring slots may still be on their way out
      return;
    }
    this.#fillWaiting = false;
    const session = this.session as SendSession;
    if (session.wantsLargerRing) this.#growRing(session);
    const target = session.wantFill();
    if (target === null) return;
    let result: number | Promise<number>;
    try {
      result = this.#init.source!.fill(target);
    } catch (error) {
      return this.#fillFailed(error);
    }
    if (typeof result === "number") this.#filled(result);
    else result.then((n) => this.#filled(n), (error) => this.#fillFailed(error));
  }

  #filled(n: number): void {
    const session = this.session as SendSession;
    if (this.#disposed) {
      session.filled(n, 0); // a finished session only notes that the fill is over
      return this.#releaseRing();
    }
    this.act((now) => session.filled(n, now));
  }

  #fillFailed(error: unknown): void {
    if (this.#disposed) {
      (this.session as SendSession).fillFailed("");
      return this.#releaseRing();
    }
    this.#init.onError(error, `reading ${this.filename} for ${this.address}:${this.port}`);
    this.act(() => (this.session as SendSession).fillFailed("error reading the file"));
  }

  /**
   * Moves the session to its full-size ring (called with nothing in flight and
   * no fill running). Without memory for it, a ring of one window will do:
   * slower, never wrong. Without memory even for that (the ring after an OACK is
   * one slot, and a window of one block at a time would cost the client a
   * timeout per block), the transfer ends with ERROR 3, as a request does that
   * finds no memory for its first ring.
   */
  #growRing(session: SendSession): void {
    const window = Math.min(session.fullSlots, session.settings.windowsize);
    for (const slots of [session.fullSlots, window]) {
      if (slots <= session.slots) break;
      const bytes = slots * session.stride;
      const ptr = allocate(bytes);
      if (ptr === 0) continue;
      session.moveRing(ptr, slots);
      session.fullSlots = slots;
      if (this.#ringHeld) release(this.#ringHeld.ptr);
      this.#ringHeld = { ptr, bytes };
      return;
    }
    if (session.slots < window) return this.act(() => session.abort(ErrorCode.DISK_FULL, "server out of memory"));
    session.fullSlots = session.slots;
  }

  /**
   * Gives the ring back once nothing can touch it: no datagram of it waits in
   * the transport, and no fill holds views of it (a detached session sends
   * later fills to the trash, unless the source captured views before).
   */
  #releaseRing(): void {
    const ring = this.#ringHeld;
    if (ring === undefined || this.#inflight > 0) return;
    const session = this.session as SendSession;
    if (session.filling && this.#init.source?.capturesViews) return; // released when that fill settles
    this.#ringHeld = undefined;
    release(ring.ptr);
  }

  #closeTransport(): void {
    if (this.#init.ownsTransport) {
      try {
        this.transport.close();
      } catch { /* already closed */ }
    }
  }

  #dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#paceTimer?.stop();
    this.#paceTimer = null;
    if (this.session instanceof SendSession) this.session.detach();
    this.#releaseRing();
    const source = this.#init.source;
    if (source) {
      try {
        Promise.resolve(source.close()).catch((e) => this.#init.onError(e, `closing ${this.filename}`));
      } catch (e) {
        this.#init.onError(e, `closing ${this.filename}`);
      }
    }
    const failure = this.session.failure;
    if (failure && this.upload) this.upload.fail(new Error(`upload failed: ${failure.message}`));
    if (this.#inflight === 0) this.#closeTransport();
    this.#init.onFinished(this);
  }
}
