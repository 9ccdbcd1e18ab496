/**
 * Drives core/session.ts directly, sans I/O: a sender over an in-memory body,
 * filled synchronously, and helpers to read what it wants to send. Time is a
 * number the test passes in.
 */
import { allocate, release } from "../../core/arena.ts";
import { toSource } from "../../core/body.ts";
import { decode, encodeAck, encodeData, encodeError } from "../../core/codec.ts";
import type { Packet } from "../../core/packet.ts";
import { ReceiveSession, ringSlots, SendSession, type SessionSettings, type Sink } from "../../core/session.ts";

export const settings = (s: Partial<SessionSettings> = {}): SessionSettings => ({
  blksize: 512,
  windowsize: 1,
  timeoutMs: 1000,
  retries: 3,
  oack: null,
  ...s,
});

export interface Sender {
  session: SendSession;
  /** Fills the ring as far as the session asks (the body is in memory: synchronous). */
  pump(now: number): void;
  /** The block count of each fill the session asked for, in order. */
  fills: number[];
  /** Decoded outgoing packets (copies of the ring's bytes). */
  out(): Packet[];
  feed(packet: Uint8Array, now: number): Packet[];
  timer(now: number): Packet[];
  free(): void;
}

export function sender(body: Uint8Array, s: Partial<SessionSettings> = {}): Sender {
  const set = settings(s);
  const slots = ringSlots(set.blksize, set.windowsize);
  const bytes = slots * (set.blksize + 4);
  const ring = allocate(bytes);
  const source = toSource(body)!;
  const session = new SendSession(set, ring, slots);
  const fills: number[] = [];
  const pump = (now: number) => {
    for (let target = session.wantFill(); target; target = session.wantFill()) {
      fills.push(target.count);
      session.filled(source.fill(target) as number, now);
    }
  };
  const out = () => session.takeOutgoing().map((d) => decodeCopy(d));
  return {
    session,
    pump,
    fills,
    out,
    feed(packet, now) {
      session.receive(decode(packet) as Packet, now);
      pump(now);
      return out();
    },
    timer(now) {
      session.handleTimer(now);
      pump(now);
      return out();
    },
    free: () => release(ring),
  };
}

/** Decodes, copying DATA payloads (ring slots are reused). */
export function decodeCopy(datagram: Uint8Array): Packet {
  const p = decode(datagram.slice());
  if (p.op === 0) throw new Error(`session sent an undecodable packet: ${p.message}`);
  return p;
}

export interface Receiver {
  session: ReceiveSession;
  received: Uint8Array[];
  ended: boolean;
  /** The sink's answer to the next write (false: hold the ACK). */
  accepting: boolean;
  start(now: number): Packet[];
  /** What the session has to send now, decoded. */
  take(): Packet[];
  feed(packet: Uint8Array, now: number): Packet[];
  timer(now: number): Packet[];
  data(): Uint8Array;
}

export function receiver(s: Partial<SessionSettings> = {}, maxBytes = Infinity): Receiver {
  const r: Receiver = {
    session: undefined as unknown as ReceiveSession,
    received: [],
    ended: false,
    accepting: true,
    start(now) {
      r.session.start(now);
      return r.take();
    },
    take: () => r.session.takeOutgoing().map(decodeCopy),
    feed(packet, now) {
      r.session.receive(decode(packet) as Packet, now);
      return r.session.takeOutgoing().map(decodeCopy);
    },
    timer(now) {
      r.session.handleTimer(now);
      return r.session.takeOutgoing().map(decodeCopy);
    },
    data: () => concat(r.received),
  };
  const sink: Sink = {
    write: (payload) => {
      r.received.push(payload.slice());
      return r.accepting;
    },
    end: () => {
      r.ended = true;
    },
  };
  r.session = new ReceiveSession(settings(s), sink, maxBytes);
  return r;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Deterministic bytes of a given length (seeded; not all zeros, so misplaced blocks show). */
export function bytesOf(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export const ack = encodeAck;
export const data = encodeData;
export const error = encodeError;
