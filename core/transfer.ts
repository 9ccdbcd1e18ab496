/**
 * One live transfer, sans I/O: a session (core/session.ts) with the memory and
 * the bookkeeping around it. Packets, fills, send completions and `now` come in
 * as calls; datagrams and fill requests go out through the owner. It never
 * touches a socket, a clock or a timer: its `wakeAt` says when it wants
 * `handleTimer`.
 *
 * Two rules about memory live here:
 * - a ring slot is refilled only once every datagram handed out has been
 *   reported sent (`sent`): a driver may hand the very bytes to the kernel later;
 * - the ring is released only once no fill is writing into it.
 */
import { decode, encodeError, NetasciiDecoder } from "./codec.ts";
import { allocate, release } from "./arena.ts";
import type { FillTarget, UploadStream } from "./body.ts";
import { transitions } from "./machine.ts";
import { TftpError } from "./errors.ts";
import { ErrorCode, Opcode } from "./packet.ts";
import { type ReceiveSession, SendSession, State } from "./session.ts";
import type { Timed } from "./timer_heap.ts";

/** What a transfer hands to whoever runs it. */
export interface TransferOwner {
  /** Datagrams to send now from the transfer's socket; `owned`: they are ring memory (see `sent`). */
  send(t: Transfer, address: string, port: number, datagrams: Uint8Array[], owned: boolean): void;
  /** Fill `target` from the transfer's source, then call `filled` or `fillFailed`. */
  fill(t: Transfer, target: FillTarget): void;
  /** The peer first answered (see Session.peerConfirmed). */
  confirmed(t: Transfer, now: number): void;
  /** An upload is stored and acknowledged: done for the client, whatever its dally brings. */
  stored(t: Transfer, now: number): void;
  /** The session is over (the transfer's socket may still have sends out). */
  finished(t: Transfer, now: number): void;
  /** The session is over and every send is done: the transfer's socket may close. */
  released(t: Transfer): void;
}

/**
 * opening: waiting for its socket; running; ending: the session is over, sends
 * or a fill are still out; gone.
 */
export const Phase = { OPENING: "opening", RUNNING: "running", ENDING: "ending", GONE: "gone" } as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
const phase = transitions<Phase>("transfer", {
  opening: ["running", "ending"],
  running: ["ending"],
  ending: ["gone"],
  gone: [],
});

/**
 * An upload's verdict against its data. receiving: neither is complete;
 * awaiting: every block is in, the handler has not decided (a deadline runs);
 * decided: the handler decided first; settled: the verdict reached the session.
 */
export const Verdict = { RECEIVING: "receiving", AWAITING: "awaiting", DECIDED: "decided", SETTLED: "settled" } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];
const verdictPhase = transitions<Verdict>("upload verdict", {
  receiving: ["awaiting", "decided", "settled"],
  awaiting: ["settled"],
  decided: ["settled"],
  settled: [],
});

/** A write handler's answer: keep the upload, or refuse it with an ERROR. */
export type UploadVerdict = { ok: true } | { ok: false; code: number; message: string };

export interface TransferInit {
  id: number;
  kind: "read" | "write";
  address: string;
  port: number;
  filename: string;
  session: SendSession | ReceiveSession;
  owner: TransferOwner;
  now: number;
  /** The arena region of the ring a SendSession starts with. */
  ring?: number;
  /** The source's fills write into views they keep across an await (BlockSource.capturesViews). */
  capturesViews?: boolean;
  /** A ReceiveSession's reader, and how long its verdict may take once the data is in (ms). */
  upload?: { stream: UploadStream; verdictMs: number };
}

export class Transfer implements Timed {
  readonly id: number;
  readonly kind: "read" | "write";
  readonly address: string;
  readonly port: number;
  readonly filename: string;
  readonly session: SendSession | ReceiveSession;
  readonly startedAt: number;
  readonly upload: UploadStream | null;
  phase: Phase = Phase.OPENING;
  verdict: Verdict = Verdict.RECEIVING;
  scheduledAt = Infinity;
  #owner: TransferOwner;
  #inflight = 0;
  #fillWaiting = false;
  #confirmed = false;
  /** The ring's region in the arena (0: none). */
  #ring: number;
  #capturesViews: boolean;
  #decision: UploadVerdict | null = null;
  #verdictMs = 0;
  #verdictAt = Infinity;
  #complete = false;
  #socketFree = false;

  constructor(init: TransferInit) {
    this.id = init.id;
    this.kind = init.kind;
    this.address = init.address;
    this.port = init.port;
    this.filename = init.filename;
    this.session = init.session;
    this.startedAt = init.now;
    this.#owner = init.owner;
    this.#ring = init.ring ?? 0;
    this.#capturesViews = init.capturesViews ?? false;
    this.upload = init.upload?.stream ?? null;
    if (init.upload) this.#verdictMs = init.upload.verdictMs;
  }

  /**
   * The sink a ReceiveSession for this transfer writes to: payloads go to the
   * upload stream (netascii decoded), its end is only noted (see #after).
   */
  static sink(upload: UploadStream, netascii: boolean, onEnd: () => void) {
    const decoder = netascii ? new NetasciiDecoder() : null;
    return {
      write: (payload: Uint8Array) => upload.push(decoder ? decoder.push(payload) : payload),
      end: () => {
        if (decoder) {
          const tail = decoder.end();
          if (tail.length > 0) upload.push(tail);
        }
        onEnd();
      },
    };
  }

  /** Marks the data complete (the session's sink calls it, inside `receive`). */
  dataComplete(): void {
    this.#complete = true;
  }

  get wakeAt(): number {
    return this.phase === Phase.RUNNING ? Math.min(this.session.wakeAt, this.#verdictAt) : Infinity;
  }

  /**
   * The socket is there: the first packet goes out. `start` false: the session does not
   * open, because the peer already has (a client's download that got DATA 1 for its request).
   */
  open(now: number, start = true): void {
    this.phase = phase(this.phase, Phase.RUNNING);
    if (start) this.session.start(now);
    this.#after(now);
  }

  /** Runs a step on the session, then sends what it produced and reacts to its new state. */
  act(step: (now: number) => void, now: number): void {
    if (this.phase !== Phase.RUNNING) return;
    step(now);
    this.#after(now);
  }

  /** A datagram for this transfer (on its socket, or for its key in single-port mode). */
  receive(data: Uint8Array, address: string, port: number, now: number): void {
    if (this.phase !== Phase.RUNNING) return;
    if (port !== this.port || address !== this.address) {
      // Another TID: tell it, and carry on undisturbed (RFC 1350). Never answer an ERROR.
      if (data.length >= 2 && !(data[0] === 0 && data[1] === Opcode.ERROR)) {
        this.#owner.send(this, address, port, [encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID")], false);
      }
      return;
    }
    const packet = decode(data);
    if (packet.op === 0) return; // a mangled datagram from the peer is dropped, not fatal
    this.session.receive(packet, now);
    this.#after(now);
  }

  handleTimer(now: number): void {
    if (this.phase !== Phase.RUNNING) return;
    if (now >= this.#verdictAt) this.#verdictTimedOut(now);
    if (now >= this.session.wakeAt) this.session.handleTimer(now);
    this.#after(now);
  }

  /** `n` of the datagrams handed out as ring memory have been sent (or failed to be). */
  sent(n: number, now: number): void {
    this.#inflight -= n;
    if (this.#inflight > 0) return;
    if (this.phase === Phase.ENDING) this.#release();
    else if (this.#fillWaiting && this.phase === Phase.RUNNING) {
      this.#startFill();
      this.#after(now);
    }
  }

  /** The fill asked for wrote `n` bytes (fewer than asked: the data ended). */
  filled(n: number, now: number): void {
    const session = this.session as SendSession;
    if (this.phase !== Phase.RUNNING) {
      session.filled(n, 0); // a finished session only notes that the fill is over
      return this.#release();
    }
    session.filled(n, now);
    this.#after(now);
  }

  /** The fill failed; `message` goes to the peer in an ERROR 0. */
  fillFailed(message: string, now: number): void {
    const session = this.session as SendSession;
    session.fillFailed(message);
    if (this.phase !== Phase.RUNNING) return this.#release();
    this.#after(now);
  }

  /** The write handler's verdict (see Verdict). */
  decide(v: UploadVerdict, now: number): void {
    if (this.verdict !== Verdict.RECEIVING && this.verdict !== Verdict.AWAITING) return; // timed out, or the upload failed
    this.#decision = v;
    if (this.verdict === Verdict.AWAITING) return this.#settle(now);
    this.verdict = verdictPhase(this.verdict, Verdict.DECIDED);
    if (!v.ok) return this.#settle(now);
    // The handler is done before the upload is: take the rest without queueing it.
    this.upload?.discard();
    this.act((t) => (this.session as ReceiveSession).resume(t), now);
  }

  #verdictTimedOut(now: number): void {
    this.#verdictAt = Infinity;
    this.#decision = { ok: false, code: ErrorCode.NOT_DEFINED, message: "handler timed out" };
    // The client hears of a failure: the handler must not commit the upload after all.
    this.upload?.fail(new TftpError(ErrorCode.NOT_DEFINED, "handler timed out"));
    this.#applyVerdict(this.#decision, now);
  }

  #settle(now: number): void {
    this.#verdictAt = Infinity;
    const session = this.session as ReceiveSession;
    if (session.state === State.FINISHING || !this.#decision!.ok) this.act((t) => this.#applyVerdict(this.#decision!, t), now);
  }

  #applyVerdict(v: UploadVerdict, now: number): void {
    this.verdict = verdictPhase(this.verdict, Verdict.SETTLED);
    const session = this.session as ReceiveSession;
    if (!v.ok) {
      if (session.state === State.FINISHING) session.finish(false, now, v.code, v.message);
      else session.abort(v.code, v.message);
      return;
    }
    session.finish(true, now);
    if (session.state === State.DALLYING) this.#owner.stored(this, now);
  }

  #after(now: number): void {
    const session = this.session;
    if (!this.#confirmed && session.peerConfirmed) {
      this.#confirmed = true;
      this.#owner.confirmed(this, now);
    }
    if (this.#complete) {
      this.#complete = false;
      this.upload?.end();
      if (this.verdict === Verdict.DECIDED) this.#applyVerdict(this.#decision!, now);
      else if (this.verdict === Verdict.RECEIVING) {
        this.verdict = verdictPhase(this.verdict, Verdict.AWAITING);
        // A verdict that never comes must not hold the client (and a session) forever.
        this.#verdictAt = now + this.#verdictMs;
      }
    }
    this.#flush();
    if (!session.finished && session instanceof SendSession) {
      this.#startFill();
      this.#flush(); // an ERROR 3 from a ring that could not grow
    }
    if (session.finished) this.#end(now);
  }

  #flush(): void {
    const out = this.session.takeOutgoing();
    if (out.length === 0) return;
    // Counted before handing out: a driver may report a send done at once.
    this.#inflight += out.length;
    this.#owner.send(this, this.address, this.port, out, true);
  }

  #startFill(): void {
    if (this.#inflight > 0) {
      this.#fillWaiting = true; // ring slots may still be on their way out
      return;
    }
    this.#fillWaiting = false;
    const session = this.session as SendSession;
    if (session.wantsLargerRing) this.#growRing(session);
    if (session.finished) return;
    const target = session.wantFill();
    if (target !== null) this.#owner.fill(this, target);
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
      if (this.#ring !== 0) release(this.#ring);
      this.#ring = ptr;
      return;
    }
    if (session.slots < window) {
      session.abort(ErrorCode.DISK_FULL, "server out of memory");
      return;
    }
    session.fullSlots = session.slots;
  }

  /** The session is over: give up the ring (once nothing can touch it) and tell the owner. */
  #end(now: number): void {
    if (this.phase === Phase.ENDING || this.phase === Phase.GONE) return;
    this.phase = phase(this.phase, Phase.ENDING);
    this.#verdictAt = Infinity;
    if (this.session instanceof SendSession) this.session.detach();
    const failure = this.session.failure;
    if (failure && this.upload) {
      if (this.verdict !== Verdict.SETTLED) this.verdict = verdictPhase(this.verdict, Verdict.SETTLED);
      this.upload.fail(new Error(`upload failed: ${failure.message}`));
    }
    this.#owner.finished(this, now);
    this.#release();
  }

  /** Ends a transfer that never opened (its socket could not be had). */
  cancel(): void {
    if (this.phase !== Phase.OPENING) return;
    this.phase = phase(this.phase, Phase.ENDING);
    if (this.session instanceof SendSession) this.session.detach();
    this.#release();
  }

  /**
   * Gives the ring back once nothing can touch it: no datagram of it waits in
   * the driver, and no fill holds views of it (a detached session sends later
   * fills to the trash, unless the source captured views before).
   */
  #release(): void {
    if (this.phase !== Phase.ENDING || this.#inflight > 0) return;
    if (!this.#socketFree) {
      this.#socketFree = true;
      this.#owner.released(this);
    }
    const session = this.session;
    if (session instanceof SendSession && session.filling && this.#capturesViews) return; // released when that fill settles
    if (this.#ring !== 0) release(this.#ring);
    this.#ring = 0;
    this.phase = phase(this.phase, Phase.GONE);
  }
}
