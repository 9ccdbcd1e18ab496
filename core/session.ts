/**
 * The transfer state machine, sans I/O: decoded packets and `now` go in;
 * datagrams to send (`takeOutgoing`) and a `deadline` come out. No sockets, no
 * timers, no clock. This file owns every state transition of a transfer.
 *
 * SendSession is the side that sends DATA (a server's read, a client's write);
 * ReceiveSession is the side that receives it.
 *
 * ```
 *  sender:   NEGOTIATING --ACK 0--> TRANSFERRING --ACK of last block--> DONE
 *            (no OACK: starts in TRANSFERRING)
 *  receiver: TRANSFERRING --short DATA--> FINISHING --finish(ok)--> DALLYING --deadline--> DONE
 *  any:      --ERROR received / retries exhausted / abort()--> FAILED
 * ```
 *
 * Retransmission happens only when the deadline passes, never because a
 * duplicate arrived (RFC 1123's cure for the Sorcerer's Apprentice). Block
 * numbers are tracked as unbounded sequence numbers and wrapped to 16 bits on
 * the wire (65535 is followed by 0), so transfers of any size work.
 */
import { encodeAck, encodeError, memory, TRASH, wasm } from "./codec.ts";
import type { FillTarget } from "./body.ts";
import { transitions } from "./machine.ts";
import { ErrorCode, Opcode, type Packet } from "./packet.ts";

export const State = {
  NEGOTIATING: "negotiating",
  TRANSFERRING: "transferring",
  FINISHING: "finishing",
  DALLYING: "dallying",
  DONE: "done",
  FAILED: "failed",
} as const;
export type State = (typeof State)[keyof typeof State];

/** The sender's moves (see the diagram above); a session starts in TRANSFERRING, and start() may negotiate first. */
const senderMoves = transitions<State>("sender", {
  transferring: ["negotiating", "done", "failed"],
  negotiating: ["transferring", "failed"],
  finishing: [],
  dallying: [],
  done: [],
  failed: [],
});

/** The receiver's moves (see the diagram above). */
const receiverMoves = transitions<State>("receiver", {
  negotiating: [],
  transferring: ["finishing", "failed"],
  finishing: ["dallying", "failed"],
  dallying: ["done", "failed"],
  done: [],
  failed: [],
});

export interface SessionSettings {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** Retransmissions of one packet (or window) before giving up. */
  retries: number;
  /** The encoded OACK to open with, or null to use the RFC 1350 defaults. */
  oack: Uint8Array | null;
  /**
   * Retransmissions allowed before the peer has answered once (default
   * INITIAL_RETRIES). A server keeps it small: its peer may be spoofed. A client
   * already heard from the server, and passes its full retries.
   */
  firstRetries?: number;
  /**
   * Backs off (a server's sessions; see Session.wait). Until the peer has answered,
   * the wait doubles after each retransmission (1, 2, 4 timeouts: with the default
   * 1 s, resends at 1 s and 3 s and gives up at 7 s): a first packet may meet a slow
   * boot ROM or a lossy link, and what a spoofed request buys stays INITIAL_RETRIES
   * packets, only spread out. Once it has answered, from the second timeout in a row.
   */
  backoff?: boolean;
  /**
   * The block number that follows 65535 when the sender's blocks run past it: 0 (the
   * default, as tftpd-hpa and most clients count) or 1 (some boot ROMs take block 0 for a
   * repeat of the OACK's acknowledgment). Only the sending side numbers blocks this way.
   */
  rollover?: 0 | 1;
}

/** Block `seq` (1, 2, ...) as its 16-bit number on the wire, rolling over to `rollover` after 65535. */
export function wireBlock(seq: number, rollover: 0 | 1 = 0): number {
  return rollover === 0 || seq <= 0xffff ? seq & 0xffff : ((seq - 1) % 0xffff) + 1;
}

/** How a failed transfer failed. `sent`: whether we told the peer with an ERROR. */
export interface Failure {
  code: number;
  message: string;
  byPeer: boolean;
}

/**
 * How long a receiver dallies after its last ACK, in timeouts: long enough to
 * hear a retransmission of the last block from a peer with the same timeout.
 */
export const DALLY_TIMEOUTS = 3;

/** The longest wait between two retransmissions once the peer has answered, in timeouts (see Session.retry). */
export const MAX_BACKOFF = 8;

/** Retransmissions of the first packet before the peer has answered (see Session.retry). */
export const INITIAL_RETRIES = 2;

/** The empty outgoing list, shared by every session (see Session.out). */
const NOTHING: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];

abstract class Session {
  state: State = State.TRANSFERRING;
  /** The only way the state changes: a move the side's table does not list throws. */
  protected abstract go(to: State): void;
  /** When handleTimer wants to be called; Infinity when no timer is needed. */
  deadline = Infinity;
  failure: Failure | null = null;
  /** Payload bytes delivered: acknowledged by the peer, or received in order. */
  abstract get bytes(): number;
  retransmits = 0;
  protected retries = 0;
  /** What takeOutgoing hands over; NOTHING (never written) while empty: a stalled session holds no array. */
  protected out: Uint8Array[] = NOTHING;
  readonly settings: SessionSettings;

  constructor(settings: SessionSettings) {
    this.settings = settings;
  }

  /** When handleTimer next has work: the deadline here; a sender may also wait to pace or resend early. */
  get wakeAt(): number {
    return this.deadline;
  }

  get finished(): boolean {
    return this.state === State.DONE || this.state === State.FAILED;
  }

  /** Datagrams to send now, in order. The caller owns the array (an empty one is shared, and frozen). */
  takeOutgoing(): Uint8Array[] {
    const out = this.out;
    if (out.length > 0) this.out = NOTHING;
    return out;
  }

  protected emit(datagram: Uint8Array): void {
    if (this.out === NOTHING) this.out = [datagram];
    else this.out.push(datagram);
  }

  /** Ends the transfer, telling the peer with ERROR `code`. */
  abort(code: number, message: string): void {
    if (this.finished) return;
    this.emit(encodeError(code, message));
    this.#end(code, message, false);
  }

  /**
   * Ends the transfer without a word to the peer, which has moved on: it confirmed
   * another answer to the same request, or asked for something else from this port.
   */
  drop(message: string): void {
    if (this.finished) return;
    this.dropped = true;
    this.#end(ErrorCode.NOT_DEFINED, message, false);
  }

  /** Set when the transfer ended by drop(). */
  dropped = false;

  /**
   * The peer repeated its request: resend now what the timer would resend (it
   * missed our first packet). Counts as a retransmission, against the retries.
   */
  resendNow(now: number): void {
    if (this.finished) return;
    this.deadline = now;
    this.handleTimer(now);
  }

  protected peerFailed(code: number, message: string): void {
    this.#end(code, message, true);
  }

  #end(code: number, message: string, byPeer: boolean): void {
    this.go(State.FAILED);
    this.failure = { code, message, byPeer };
    this.deadline = Infinity;
  }

  /** Common handling of what is not this side's business; returns true if handled. */
  protected receiveOther(packet: Packet): void {
    if (packet.op === Opcode.ERROR) this.peerFailed(packet.code, packet.message); // never answered, never retransmitted
    else this.abort(ErrorCode.ILLEGAL_OPERATION, "illegal TFTP operation");
  }

  /** True once the peer has answered anything after the request: until then it may be spoofed. */
  abstract get peerConfirmed(): boolean;

  /**
   * Counts one timeout; returns false (after failing) when the retries are used
   * up. Until the peer has confirmed it exists, at most INITIAL_RETRIES: a
   * spoofed request buys one packet and a couple of copies, not a barrage.
   */
  protected retry(now: number): boolean {
    const first = this.settings.firstRetries ?? INITIAL_RETRIES;
    const limit = this.peerConfirmed ? this.settings.retries : Math.min(this.settings.retries, first);
    if (this.retries >= limit) {
      this.abort(ErrorCode.NOT_DEFINED, "timed out");
      return false;
    }
    this.retries++;
    this.retransmits++;
    this.deadline = now + this.wait();
    return true;
  }

  /**
   * How long to wait for the peer now: the timeout, or with `backoff` longer after
   * timeouts in a row. Until the peer has answered, see `backoff`. Once it has, the
   * second timeout in a row and those after it double the wait, up to MAX_BACKOFF
   * timeouts (RFC 1123, 4.2.3.2): a peer that is ahead of us and answers only on its
   * own timer, which each of our resends restarts (atftp ignores blocks it has and
   * ACKs again only then), gets the silence it needs to speak. Progress (retries back
   * to 0) ends it. A client does not back off: a server dallies after its last ACK for
   * three of its timeouts, which sparser retransmissions of the last DATA would miss.
   */
  protected wait(): number {
    if (!this.settings.backoff) return this.settings.timeoutMs;
    const factor = this.peerConfirmed ? Math.min(2 ** Math.max(0, this.retries - 1), MAX_BACKOFF) : 2 ** this.retries;
    return this.settings.timeoutMs * factor;
  }

  abstract start(now: number): void;
  abstract receive(packet: Packet, now: number): void;
  abstract handleTimer(now: number): void;
}

/**
 * The pause between two bursts of a window, once the path has shown it drops
 * back-to-back datagrams (see SendSession.burst): long enough for a slow receiver
 * (a boot loader polling one receive buffer) to take the last one.
 */
export const PACE_MS = 1;

/**
 * The shortest wait after the last block of a window for its ACK before the sender resends the
 * window once, early (see SendSession.probeAt). Far above the round trip of a LAN or a loopback
 * (U-Boot in QEMU's emulation ACKs within a millisecond), far below the shortest timeout (1 s).
 * A slower path waits PROBE_RTTS round trips instead. It is part of `wakeAt`: the driver's one
 * timer wakes for it.
 */
export const PROBE_MS = 50;
/**
 * The wait before an early resend, in measured round trips when that is longer than PROBE_MS:
 * a path with a 100 ms round trip (a WAN) answers every window after 100 ms, and an early
 * resend then would double its traffic for nothing.
 */
export const PROBE_RTTS = 4;

/** Read-ahead that makes a read call worth its cost (a thread-pool round trip in Node). */
const READ_AHEAD = 128 * 1024;
/**
 * Fewest slots. Above blksize 43,686, 128 KiB holds only two blocks, and with a
 * ring of 2 lock-step paid a read (a thread-pool round trip on Node) per block.
 * With 3, each read brings two: at blksize 65464 Node's server CPU is 12-17% lower
 * (see "Read-ahead at the largest blocks" in BENCHMARKS.md). 3 and not 4: a ring of
 * 4 blocks of 32 KiB would spill out of the arena's 128 KiB class.
 */
const MIN_SLOTS = 3;

/**
 * Ring slots for a transfer: at least one window plus one block; two windows,
 * 128 KiB of read-ahead or {@link MIN_SLOTS}, whichever is more; within a memory budget.
 */
export function ringSlots(blksize: number, windowsize: number, budget = 8 * 1024 * 1024): number {
  const stride = blksize + 4;
  // floor, not ceil: the ring then fits the arena's power-of-two class instead of spilling into the next
  const want = Math.max(2 * windowsize, Math.floor(READ_AHEAD / stride), MIN_SLOTS);
  return Math.max(windowsize + 1, Math.min(want, Math.floor(budget / stride)));
}

/**
 * The ring of a download: `first` slots until the client answers, `full` after.
 * Until then one window, so that a client that never answers (a scan, a stalled
 * boot ROM) holds a small region (seven rings of one 512-byte block share a page). After an
 * OACK (`oack`) nothing is sent, or read, before the client's ACK 0: one slot,
 * left empty, since a request for blksize 65464 and windowsize 64 would otherwise
 * hold 4 MiB and read as much for a client that never answers. A source of known
 * size never needs more slots than it has blocks (the last may be empty).
 */
export function ringPlan(blksize: number, windowsize: number, size?: number, oack = false): { first: number; full: number } {
  const blocks = size === undefined ? Infinity : Math.floor(size / blksize) + 1;
  const full = Math.min(ringSlots(blksize, windowsize), blocks);
  return { first: oack ? 1 : Math.min(full, windowsize), full };
}

/**
 * The sending side. Blocks live in a ring of `slots` slots of blksize + 4 bytes
 * at `ring` in linear memory: the DATA header is written in place in front of
 * each payload, and the datagrams sent are views of the ring. The caller fills
 * the ring from its source when `wantFill()` says so (read-ahead happens while
 * the window is in flight) and reports with `filled()`.
 *
 * Sequence numbers: block seq s lives in slot (s - 1) % slots; `acked` <= `sent`
 * <= `available` <= `last`.
 *
 * The ring may start small (one window) and move to `fullSlots` once the peer
 * has answered: see {@link wantsLargerRing}.
 */
export class SendSession extends Session {
  protected go(to: State): void {
    this.state = senderMoves(this.state, to);
  }
  ring: number;
  slots: number;
  /** The ring's size once the peer has answered (slots until then, unless equal). */
  fullSlots: number;
  readonly stride: number;
  /** Highest block acknowledged (0: none; the OACK is acknowledged as block 0). */
  acked = 0;
  /** Highest block sent since the window last (re)started: the next to send is sent + 1. */
  sent = 0;
  /** Highest block ever sent: an ACK up to it is genuine, even after `sent` went back for a resend. */
  #highest = 0;
  /** Highest block filled in the ring. */
  available = 0;
  /** The final block, once the source has ended; Infinity before. */
  last = Infinity;
  /**
   * Blocks sent back to back; the rest of the window follows in bursts of this size,
   * PACE_MS apart. The whole window until the path shows it drops bursts: a card
   * with one receive buffer (U-Boot on QEMU's e1000) takes only the first datagram
   * of each. The window itself stays the negotiated one, since that is what the
   * receiver counts before it ACKs (RFC 7440; U-Boot counts from its last ACK): a
   * smaller window would cost a receiver timeout each.
   */
  burst: number;
  /** The largest burst with which a whole window got through (0: none yet): bursts grow back no further. */
  proven = 0;
  /** The smallest burst used (reported in the transfer event). */
  minBurst: number;
  /** When the next burst of the window may go; Infinity when none waits. */
  paceAt = Infinity;

  override get wakeAt(): number {
    return Math.min(this.deadline, this.paceAt, this.probeAt);
  }
  /**
   * When to resend the window as a timeout would, but once and early, if no ACK has come by
   * then (PROBE_MS, or PROBE_RTTS round trips on a slower path, after a whole window went out;
   * windowed transfers only; Infinity: none). A receiver that ACKs only when its count reaches
   * the window's end (U-Boot does) is silent when the window's last blocks are lost: nothing
   * follows that could show it the gap, and both sides sit out a whole timeout (U-Boot asks
   * for 5 s) for each loss. Resending the last block alone is not enough: U-Boot ACKs a block
   * out of order only once for the same block count, so after a gap ACK it ignores anything but
   * the next block in order. The whole window from the first block not acknowledged gives it
   * that block, and the one that completes its window, whichever it lacks; blocks it has are
   * ignored (U-Boot before 2023.04 answers the first of them with its gap ACK: it speaks too).
   */
  probeAt = Infinity;
  /** The early resend went out since the last ACK: no second one, and no proof of the burst. */
  #probed = false;
  /**
   * The round trip, smoothed as RFC 6298's SRTT (gain 1/8), in ms; 0 before a sample. Sampled from
   * the OACK to ACK 0 and from a window's last block to its ACK, only when nothing was resent since
   * (the ACK might answer the first copy: Karn's rule).
   */
  srtt = 0;
  /** When the last block of a window (`#outSeq`; 0: the OACK) went out. */
  #outAt = 0;
  #outSeq = 0;
  #lastLength = 0;
  #filling = false;
  #detached = false;
  #fillSeq = 0;
  #fillCount = 0;

  constructor(settings: SessionSettings, ring: number, slots: number, fullSlots = slots) {
    super(settings);
    this.ring = ring;
    this.slots = slots;
    this.fullSlots = fullSlots;
    this.stride = settings.blksize + 4;
    this.burst = this.minBurst = settings.windowsize;
  }

  /**
   * True when the ring should move to its full size now: the peer has answered
   * (a client that never does, like a scan or a stalled boot ROM, keeps holding
   * one window), more data is to come, and no fill is writing into the ring.
   * The caller also makes sure no datagram of the ring waits in the transport.
   */
  get wantsLargerRing(): boolean {
    return this.slots < this.fullSlots && this.peerConfirmed && !this.#filling && !this.finished && this.available < this.last;
  }

  /** Moves the unacknowledged blocks (headers included) to a ring of `slots` slots at `ring`. */
  moveRing(ring: number, slots: number): void {
    const mem = memory();
    for (let seq = this.acked + 1; seq <= this.available; seq++) {
      const from = this.ring + ((seq - 1) % this.slots) * this.stride;
      mem.copyWithin(ring + ((seq - 1) % slots) * this.stride, from, from + this.stride);
    }
    this.ring = ring;
    this.slots = slots;
  }

  start(now: number): void {
    if (this.settings.oack) {
      this.go(State.NEGOTIATING);
      this.emit(this.settings.oack);
      this.#outAt = now;
      this.deadline = now + this.settings.timeoutMs;
    } else {
      this.go(State.TRANSFERRING);
      this.deadline = now + this.settings.timeoutMs;
      this.#pump(now);
    }
  }

  /** The payload address of block `seq` in linear memory. */
  payloadOffset(seq: number): number {
    return this.ring + ((seq - 1) % this.slots) * this.stride + 4;
  }

  /**
   * A fill to start now, or null. The ring holds blocks acked+1 .. acked+slots;
   * a slot is refilled only once its block has been acknowledged. Fills come
   * in batches of half the ring (fewer, larger reads), or sooner when less
   * than a window is left. Until the peer's first ACK only two windows are
   * read, and nothing while an OACK waits for its ACK 0: a client that never
   * answers costs little.
   */
  wantFill(): FillTarget | null {
    if (this.#filling || this.finished || this.available >= this.last || this.state === State.NEGOTIATING) return null;
    const { windowsize } = this.settings;
    const depth = this.acked === 0 ? Math.min(this.slots, 2 * windowsize) : this.slots;
    // The first fill brings one window (two blocks in lock-step, as every fill does): the first
    // DATA (after an OACK, on the client's ACK 0) waits for no more reading than it needs, and
    // the next window is read while it is in flight.
    const count = Math.min(this.acked + depth - this.available, this.available === 0 ? Math.max(windowsize, 2) : Infinity);
    if (count <= 0) return null;
    if (this.available - this.acked > windowsize && count < this.slots / 2) return null;
    this.#filling = true;
    this.#fillSeq = this.available + 1;
    this.#fillCount = count;
    const first = this.#fillSeq;
    const blksize = this.settings.blksize;
    return {
      count,
      view: (i) => {
        const at = this.#fillOffset(first + i);
        return memory().subarray(at, at + blksize);
      },
      offset: (i) => this.#fillOffset(first + i),
    };
  }

  /** Where a fill writes block `seq`: its ring slot, or the trash once the transfer is over. */
  #fillOffset(seq: number): number {
    return this.#detached ? TRASH : this.payloadOffset(seq);
  }

  /**
   * The transfer is over and its ring goes back to the arena: from now on a
   * fill still running (a stream that answers late) writes into the trash.
   */
  detach(): void {
    this.#detached = true;
  }

  /** The peer's ACK 0 answered our OACK. */
  #oackAcked = false;

  get peerConfirmed(): boolean {
    return this.acked > 0 || this.#oackAcked;
  }

  get bytes(): number {
    const { blksize } = this.settings;
    return this.acked === this.last ? (this.last - 1) * blksize + this.#lastLength : this.acked * blksize;
  }

  get filling(): boolean {
    return this.#filling;
  }

  /** The fill from wantFill() wrote `n` bytes; fewer than asked for means the data ended. */
  filled(n: number, now: number): void {
    this.#filling = false;
    if (this.finished) return;
    const blksize = this.settings.blksize;
    const full = Math.min(Math.floor(n / blksize), this.#fillCount);
    const ended = n < this.#fillCount * blksize;
    const blocks = full + (ended ? 1 : 0);
    const firstSlot = (this.#fillSeq - 1) % this.slots;
    this.#writeHeaders(firstSlot, this.#fillSeq, blocks);
    this.available += blocks;
    if (ended) {
      this.last = this.available;
      this.#lastLength = n - full * blksize;
    }
    this.#pump(now);
  }

  /**
   * DATA headers for `count` blocks from `seq` on, starting at ring slot `slot`. The WASM
   * writer counts 16-bit numbers up from the first; rolling over to 1, a run that passes
   * 65535 is written in two parts.
   */
  #writeHeaders(slot: number, seq: number, count: number): void {
    const rollover = this.settings.rollover ?? 0;
    while (count > 0) {
      const wire = wireBlock(seq, rollover);
      const run = rollover === 0 ? count : Math.min(count, 0x10000 - wire);
      wasm.writeDataHeaders(this.ring, this.stride, this.slots, slot, wire, run);
      slot = (slot + run) % this.slots;
      seq += run;
      count -= run;
    }
  }

  /** The source failed: tell the peer. */
  fillFailed(message: string): void {
    this.#filling = false;
    this.abort(ErrorCode.NOT_DEFINED, message);
  }

  /**
   * The sequence number of an ACK's 16-bit block: the nearest at or after `acked`. Rolling
   * over to 1, the numbers after the first 65535 cycle through 1..65535: an ACK of 0 is then
   * only the answer to an OACK, and later a stray, taken as a duplicate.
   */
  #sequenceOf(block: number): number {
    if ((this.settings.rollover ?? 0) === 0) return this.acked + ((block - this.acked) & 0xffff);
    if (block === 0) return this.acked;
    return this.acked + ((block - wireBlock(this.acked, 1) + 0xffff) % 0xffff);
  }

  #packet(seq: number): Uint8Array {
    const at = this.payloadOffset(seq) - 4;
    const len = seq === this.last ? this.#lastLength : this.settings.blksize;
    return memory().subarray(at, at + 4 + len);
  }

  /** Sends what the window allows and the ring has, a burst at a time (see `burst`). */
  #pump(now: number): void {
    if (this.state !== State.TRANSFERRING || (this.paceAt !== Infinity && now < this.paceAt)) return;
    this.paceAt = Infinity;
    const limit = Math.min(this.acked + this.settings.windowsize, this.available, this.sent + this.burst);
    if (this.sent >= limit) return;
    for (let seq = this.sent + 1; seq <= limit; seq++) this.emit(this.#packet(seq));
    this.sent = limit;
    if (limit > this.#highest) this.#highest = limit;
    this.deadline = now + this.wait();
    // A smaller burst than the window: the next one waits, be it of this window (even for blocks
    // still being read) or of the next, which the ACK of this one may call for at once.
    if (this.burst < this.settings.windowsize && limit < this.last) this.paceAt = now + PACE_MS;
    // The window is out: resend it early if its ACK is late (see probeAt). Not in lock-step,
    // where every block is answered (no silent tail) and the early copy would only double a slow
    // peer's traffic.
    const windowEnd = Math.min(this.acked + this.settings.windowsize, this.last);
    if (limit === windowEnd) {
      this.#outAt = now;
      this.#outSeq = limit;
    }
    if (this.settings.windowsize > 1 && limit === windowEnd && !this.#probed) {
      this.probeAt = now + Math.max(PROBE_MS, PROBE_RTTS * this.srtt);
    }
  }

  /** A round trip measured (see srtt). */
  #sample(ms: number): void {
    this.srtt = this.srtt === 0 ? ms : this.srtt + (ms - this.srtt) / 8;
  }

  /**
   * Nothing came back (for a timeout, or for PROBE_MS after a window): halve the burst, and resend
   * the window from the first block not acknowledged, a burst at a time (not the burst that was
   * just lost again).
   */
  #resend(now: number): void {
    if (this.sent > this.acked) this.#setBurst(this.burst >> 1);
    this.sent = this.acked;
    this.paceAt = Infinity;
    this.probeAt = Infinity;
    this.#pump(now);
  }

  /** Sets the burst (at least 1), noting the smallest. */
  #setBurst(n: number): void {
    this.burst = Math.max(1, n);
    if (this.burst < this.minBurst) this.minBurst = this.burst;
  }

  receive(packet: Packet, now: number): void {
    if (this.finished) return;
    if (packet.op === Opcode.OACK) return; // a duplicate of the OACK that started a client's upload
    if (packet.op !== Opcode.ACK) return this.receiveOther(packet);
    if (this.state === State.NEGOTIATING) {
      if (packet.block !== 0) return; // not an answer to the OACK
      if (this.retries === 0) this.#sample(now - this.#outAt);
      this.#oackAcked = true;
      this.go(State.TRANSFERRING);
      this.retries = 0;
      this.deadline = now + this.settings.timeoutMs;
      return this.#pump(now);
    }
    // Map the 16-bit block onto the sequence: the nearest at or after `acked`.
    const seq = this.#sequenceOf(packet.block);
    // Duplicate or stray: never resend for it. An ACK beyond `sent` but not beyond what was ever
    // sent answers blocks sent before a timeout's resend began again from the first unacknowledged.
    if (seq === this.acked || seq > this.#highest) return;
    if (seq < this.sent) {
      // A gap within the first burst: the path took only that many back to back.
      if (seq - this.acked < this.burst) this.#setBurst(seq - this.acked);
    } else if (!this.#probed) {
      // All we sent arrived: a window (or its end) got through with this burst. Not so after an
      // early resend: the ACK may answer blocks sent before it, and says nothing of this burst.
      if (this.burst > this.proven) this.proven = this.burst;
      this.#setBurst(Math.min(this.burst + 1, this.proven));
      if (this.retries === 0 && seq === this.#outSeq) this.#sample(now - this.#outAt);
    }
    this.acked = seq;
    this.retries = 0;
    this.probeAt = Infinity;
    this.#probed = false;
    // A pause under way stays: the ACK left the peer right after the last block reached it, and a
    // block sent at once would land on the heels of that one.
    if (seq === this.last) {
      this.go(State.DONE);
      this.deadline = Infinity;
      return;
    }
    // An ACK short of the window's end reports a gap: resume after it (RFC 7440).
    if (seq !== this.sent) this.sent = seq;
    this.deadline = now + this.settings.timeoutMs; // bounds a source that stalls
    this.#pump(now);
  }

  handleTimer(now: number): void {
    if (this.finished) return;
    if (now < this.deadline) {
      if (now >= this.probeAt) {
        // The window is out and its ACK is late: resend it now, once (see probeAt). It counts as a
        // retransmission, not against the retries: those are for timeouts.
        this.#probed = true;
        this.retransmits++;
        return this.#resend(now);
      }
      if (now >= this.paceAt) this.#pump(now); // the next burst of the window
      return;
    }
    if (!this.retry(now)) return;
    if (this.state === State.NEGOTIATING) return void this.emit(this.settings.oack!);
    this.#resend(now);
  }
}

/** Where a ReceiveSession puts payloads. */
export interface Sink {
  /** Takes a payload (a view valid only during the call); false asks to hold the ACK. */
  write(payload: Uint8Array): boolean;
  /** The last block arrived; call finish() with the verdict. */
  end(): void;
}

/**
 * The receiving side. ACKs every `windowsize` blocks (every block in
 * lock-step), ACKs the last in-order block on a gap, re-ACKs when the block it
 * last acknowledged arrives again, and dallies after the final ACK to re-ACK a
 * retransmitted last block.
 */
export class ReceiveSession extends Session {
  protected go(to: State): void {
    this.state = receiverMoves(this.state, to);
  }
  /** The next block expected. */
  expected = 1;
  /** The block last acknowledged (0 for ACK 0 or the OACK). */
  lastAck = 0;
  readonly maxBytes: number;
  #sink: Sink;
  #bytes = 0;
  #dallies = 0;
  #inWindow = 0;
  #holding = false;
  #gapAcked = false;

  constructor(settings: SessionSettings, sink: Sink, maxBytes = Infinity) {
    super(settings);
    this.#sink = sink;
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get peerConfirmed(): boolean {
    return this.expected > 1;
  }

  start(now: number): void {
    this.go(State.TRANSFERRING);
    this.emit(this.settings.oack ?? encodeAck(0));
    this.deadline = now + this.settings.timeoutMs;
  }

  /** ACKs `seq` and starts a new window after it. Retries are not reset here: only progress does that. */
  #ack(seq: number, now: number): void {
    this.lastAck = seq;
    this.#inWindow = 0;
    this.#gapAcked = false;
    this.emit(encodeAck(seq));
    this.deadline = now + this.settings.timeoutMs;
  }

  receive(packet: Packet, now: number): void {
    if (this.finished) return;
    if (packet.op === Opcode.OACK) {
      // A client's download: the server repeats its OACK because our ACK 0 was lost. Late copies are ignored.
      if (this.expected === 1 && this.settings.oack === null) this.emit(encodeAck(0));
      return;
    }
    if (packet.op !== Opcode.DATA) return this.receiveOther(packet);
    const wireLast = this.lastAck & 0xffff;
    if (this.state === State.DALLYING) {
      // The last block again: our last ACK was lost. ACK it again and dally on, a bounded number of times.
      if (packet.block === wireLast && this.#dallies < this.settings.retries) {
        this.#dallies++;
        this.emit(encodeAck(this.lastAck));
        this.deadline = now + DALLY_TIMEOUTS * this.settings.timeoutMs;
      }
      return;
    }
    if (this.state === State.FINISHING) return; // the verdict is pending; the peer will retransmit
    const { blksize, windowsize } = this.settings;
    const payload = packet.payload;
    const diff = (packet.block - this.expected) & 0xffff;
    if (diff === 0) {
      // While our ACK is held, a block past the window is a sender that did not wait for it:
      // dropped (it comes again after the ACK), not pushed into a sink that asked us to stop,
      // and no progress (the retries still bound the wait).
      if (this.#holding) return;
      if (payload.length > blksize) return this.abort(ErrorCode.ILLEGAL_OPERATION, "block larger than blksize");
      if (this.#bytes + payload.length > this.maxBytes) {
        return this.abort(ErrorCode.DISK_FULL, `the file is larger than ${this.maxBytes} bytes`);
      }
      this.#bytes += payload.length;
      this.expected++;
      // Progress: the timeouts count again from zero, and a new gap (a block lost from the
      // window the peer resent after our last gap ACK) is reported at once, not at the timeout.
      this.retries = 0;
      this.#gapAcked = false;
      const more = this.#sink.write(payload);
      if (payload.length < blksize) {
        this.go(State.FINISHING);
        this.deadline = Infinity;
        this.#sink.end();
        return;
      }
      this.#inWindow++;
      if (this.#inWindow >= windowsize) {
        if (more) this.#ack(this.expected - 1, now);
        else this.#holding = true;
      }
      return;
    }
    if (diff < 0x8000) {
      // A block from the future: one was lost. ACK what we have, once, so the sender resumes after it.
      if (!this.#gapAcked && !this.#holding) {
        this.#ack(this.expected - 1, now);
        this.#gapAcked = true;
      }
      return;
    }
    // An old block. If it is the one we last acknowledged, our ACK was lost: send it again.
    if (packet.block === wireLast && !this.#holding) this.emit(encodeAck(this.lastAck));
  }

  /** The sink caught up: send the ACK that was held back, with retries of its own. */
  resume(now: number): void {
    if (!this.#holding || this.state !== State.TRANSFERRING) return;
    this.#holding = false;
    this.retries = 0;
    this.#ack(this.expected - 1, now);
  }

  /** The verdict on a complete upload: ACK the last block and dally, or refuse it. */
  finish(ok: boolean, now: number, code: number = ErrorCode.ACCESS_VIOLATION, message = "upload refused"): void {
    if (this.state !== State.FINISHING) return;
    if (!ok) return this.abort(code, message);
    this.go(State.DALLYING);
    this.lastAck = this.expected - 1;
    this.emit(encodeAck(this.lastAck));
    this.deadline = now + DALLY_TIMEOUTS * this.settings.timeoutMs;
  }

  /**
   * The dally is over: its deadline passed, or the peer moved on (it sent another
   * request from the same port) and is done with this upload.
   */
  endDally(): void {
    if (this.state !== State.DALLYING) return;
    this.go(State.DONE);
    this.deadline = Infinity;
  }

  handleTimer(now: number): void {
    if (this.finished || now < this.deadline) return;
    if (this.state === State.DALLYING) return this.endDally(); // no copy of the last block came back
    if (!this.retry(now)) return;
    if (this.#holding) return; // the handler is slow; the peer waits, retries bound the wait
    if (this.expected === 1 && this.settings.oack) this.emit(this.settings.oack);
    // The last block received in order, which may be past the last one acknowledged: a window
    // that lost a block after the gap ACK (RFC 7440's receiver timeout). ACKing the older block
    // would have the peer resend what we hold, and never reach the rest.
    else this.#ack(this.expected - 1, now);
  }
}
