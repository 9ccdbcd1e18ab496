/**
 * A client's transfer, sans I/O: the request phase (sent until the server
 * answers from its transfer port), then a ReceiveSession (get) or a
 * SendSession (put) run by a Transfer, as the server runs its own. Datagrams,
 * fills and `now` come in as calls; datagrams, fill requests, received data and
 * the outcome come out. drivers/client.ts runs it on a socket and a timer.
 */
import { allocate } from "./arena.ts";
import type { FillTarget } from "./body.ts";
import { decode, encodeError } from "./codec.ts";
import { TftpError } from "./errors.ts";
import { transitions } from "./machine.ts";
import { DEFAULT_BLKSIZE } from "./options.ts";
import { ErrorCode, Opcode, type Options, type Packet } from "./packet.ts";
import { ReceiveSession, ringSlots, SendSession, type SessionSettings } from "./session.ts";
import type { Timed } from "./timer_heap.ts";
import { Transfer, type TransferOwner } from "./transfer.ts";

/** An ERROR packet the server sent, as opposed to a failure found on this side (no answer, a bad OACK). */
export class TftpServerError extends TftpError {
  constructor(code: number, message: string) {
    super(code, message);
    this.name = "TftpServerError";
  }
}

/**
 * An IP literal in one spelling (the URL standard's), so that "0:0:0:0:0:0:0:1" and
 * "::1", or "::ffff:127.0.0.1", "::ffff:7f00:1" and "127.0.0.1" (the adapters hand
 * IPv4-mapped peers on as IPv4), compare equal; null for a name.
 */
export function canonicalIp(host: string): string | null {
  try {
    const h = new URL(`tftp://${host.includes(":") ? `[${host}]` : host}/`).hostname;
    const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(h);
    if (mapped) return [mapped[1], mapped[2]].map((g) => `${parseInt(g, 16) >> 8}.${parseInt(g, 16) & 255}`).join(".");
    return h.startsWith("[") || /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(h) ? h : null;
  } catch {
    return null;
  }
}

/** requesting → transferring → done | failed (and requesting → failed: refused, or no answer). */
export const Phase = { REQUESTING: "requesting", TRANSFERRING: "transferring", DONE: "done", FAILED: "failed" } as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
const phase = transitions<Phase>("client", {
  requesting: ["transferring", "failed"],
  transferring: ["done", "failed"],
  done: [],
  failed: [],
});

export interface ExchangeInit {
  kind: "get" | "put";
  /** The server, as the caller named it, and its request port. */
  host: string;
  port: number;
  filename: string;
  request: Uint8Array;
  /** The options the request carries (an OACK may only answer these). */
  requested: Options;
  /** The blksize and windowsize asked for: an OACK may not exceed them. */
  asked: { blksize?: number; windowsize?: number };
  timeoutMs: number;
  retries: number;
  /** A put's source: fills come out through takeFill. */
  capturesViews?: boolean;
  /** A get in netascii: the data comes out decoded. */
  decode?: (payload: Uint8Array) => Uint8Array;
  /** The rest of a decoded get, at its end. */
  flush?: () => Uint8Array;
  /**
   * A get's most payload bytes as sent (netascii: before decoding, which only shrinks them): a
   * larger tsize is refused with ERROR 3, and the block that would pass it is answered with ERROR
   * 3 in place of its ACK, unwritten. Default: no limit.
   */
  maxSize?: number;
}

export type Outcome = { ok: true; oack: Options | null } | { ok: false; error: TftpError };

export class ClientExchange implements TransferOwner, Timed {
  phase: Phase = Phase.REQUESTING;
  scheduledAt = Infinity;
  /** The result, once known (a get's is known at its last ACK: the dally that follows is the server's business). */
  outcome: Outcome | null = null;
  /** The server's OACK, or null. */
  oack: Options | null = null;
  #init: ExchangeInit;
  #canonical: string | null;
  #tries = 0;
  #deadline = Infinity;
  #out: { address: string; port: number; datagrams: Uint8Array[]; owned: boolean }[] = [];
  #fill: FillTarget | null = null;
  #data: Uint8Array[] = [];
  #transfer: Transfer | null = null;
  #complete = false;
  /** The socket may close: the transfer is over and nothing of its memory is out. */
  socketFree = false;

  constructor(init: ExchangeInit) {
    this.#init = init;
    this.#canonical = canonicalIp(init.host);
  }

  get transfer(): Transfer | null {
    return this.#transfer;
  }

  get wakeAt(): number {
    if (this.phase === Phase.REQUESTING) return this.#deadline;
    return this.#transfer?.wakeAt ?? Infinity;
  }

  /** Payload bytes delivered so far (received in order, or acknowledged). */
  get bytes(): number {
    return this.#transfer?.session.bytes ?? 0;
  }

  start(now: number): void {
    this.#sendRequest(now);
  }

  takeDatagrams(): { address: string; port: number; datagrams: Uint8Array[]; owned: boolean }[] {
    const out = this.#out;
    if (out.length > 0) this.#out = [];
    return out;
  }

  /** A fill wanted from the put's source (then `filled` or `fillFailed`). */
  takeFill(): FillTarget | null {
    const f = this.#fill;
    this.#fill = null;
    return f;
  }

  /** A get's data received since the last call, in order. */
  takeData(): Uint8Array[] {
    const d = this.#data;
    if (d.length > 0) this.#data = [];
    return d;
  }

  receive(data: Uint8Array, address: string, port: number, now: number): void {
    if (this.phase === Phase.TRANSFERRING) {
      this.#transfer!.receive(data, address, port, now);
      return this.#afterTransfer();
    }
    if (this.phase !== Phase.REQUESTING) return;
    if (address !== this.#init.host && canonicalIp(address) !== this.#canonical) return; // a stranger, not the server we asked
    const first = decode(data);
    if (first.op === 0) return; // not an answer
    if (first.op === Opcode.ERROR) return this.#fail(new TftpServerError(first.code, first.message));
    try {
      // The address as the server answers from it (its canonical spelling, say), which the transfer then expects.
      this.#begin(first, data, address, port, now);
    } catch (e) {
      if (!(e instanceof TftpError)) throw e;
      this.#out.push({ address, port, datagrams: [encodeError(e.code, e.message)], owned: false });
      this.#fail(e);
    }
  }

  handleTimer(now: number): void {
    if (this.phase === Phase.REQUESTING) {
      if (now < this.#deadline) return;
      if (this.#tries >= this.#init.retries) return this.#fail(new TftpError(ErrorCode.NOT_DEFINED, "no answer from the server"));
      this.#tries++;
      return this.#sendRequest(now);
    }
    if (this.#transfer === null) return;
    this.#transfer.handleTimer(now);
    this.#afterTransfer();
  }

  /** Ends the transfer from this side (the caller's sink failed), telling the server. */
  abort(code: number, message: string, cause: unknown, now: number): void {
    const t = this.#transfer;
    if (t === null) return this.#fail(new TftpError(code, message, { cause }));
    this.#cause = cause;
    t.act(() => t.session.abort(code, message), now);
    this.#afterTransfer();
  }
  #cause: unknown = undefined;

  filled(n: number, now: number): void {
    this.#transfer?.filled(n, now);
    this.#afterTransfer();
  }

  fillFailed(cause: unknown, now: number): void {
    this.#cause ??= cause;
    this.#transfer?.fillFailed("error reading the file", now);
    this.#afterTransfer();
  }

  sent(n: number, now: number): void {
    this.#transfer?.sent(n, now);
    this.#afterTransfer();
  }

  #sendRequest(now: number): void {
    this.#out.push({ address: this.#init.host, port: this.#init.port, datagrams: [this.#init.request], owned: false });
    this.#deadline = now + this.#init.timeoutMs;
  }

  #fail(error: TftpError): void {
    if (this.phase === Phase.DONE || this.phase === Phase.FAILED) return;
    this.phase = phase(this.phase, Phase.FAILED);
    this.#deadline = Infinity;
    this.outcome ??= { ok: false, error };
    if (this.#transfer === null) this.socketFree = true;
  }

  /**
   * The transfer's settings from the server's OACK, which may only answer what was
   * asked (RFC 2347): an option not asked for, a blksize or windowsize above the
   * request, or a timeout other than the one requested (RFC 2349) is refused with
   * ERROR 8. An unchecked timeout of "abc" would have made every timer NaN.
   */
  #settings(oack: Options | null): SessionSettings {
    const requested = this.#init.requested;
    const asked = this.#init.asked;
    for (const name of Object.keys(oack ?? {})) {
      if (!Object.hasOwn(requested, name)) throw new TftpError(ErrorCode.OPTION_REFUSED, `the server answered an option not asked for: ${name}`);
    }
    if (oack?.timeout !== undefined && oack.timeout !== requested.timeout) {
      throw new TftpError(ErrorCode.OPTION_REFUSED, "the server answered the timeout option with another value");
    }
    if (oack?.tsize !== undefined && !/^[0-9]{1,15}$/.test(oack.tsize)) {
      throw new TftpError(ErrorCode.OPTION_REFUSED, "the server answered tsize with a value that is not a size");
    }
    const blksize = oack?.blksize ? Number(oack.blksize) : DEFAULT_BLKSIZE;
    const windowsize = oack?.windowsize ? Number(oack.windowsize) : 1;
    if (
      (oack?.blksize && !(blksize >= 8 && blksize <= (asked.blksize ?? DEFAULT_BLKSIZE))) ||
      (oack?.windowsize && !(windowsize >= 1 && windowsize <= (asked.windowsize ?? 1)))
    ) {
      throw new TftpError(ErrorCode.OPTION_REFUSED, "the server answered an option with a value out of range");
    }
    // Said in place of ACK 0: the file is refused before any of it comes.
    const max = this.#init.maxSize ?? Infinity;
    if (oack?.tsize !== undefined && Number(oack.tsize) > max) {
      throw new TftpError(ErrorCode.DISK_FULL, `the server announced ${oack.tsize} bytes, more than maxSize (${max})`);
    }
    const timeoutMs = oack?.timeout ? Number(oack.timeout) * 1000 : this.#init.timeoutMs;
    const retries = this.#init.retries;
    return { blksize, windowsize, timeoutMs, retries, firstRetries: retries, oack: null };
  }

  #begin(first: Packet, data: Uint8Array, address: string, port: number, now: number): void {
    const { kind, filename } = this.#init;
    const oack = first.op === Opcode.OACK ? first.options : null;
    if (kind === "get" ? first.op !== Opcode.OACK && first.op !== Opcode.DATA : !(first.op === Opcode.OACK || (first.op === Opcode.ACK && first.block === 0))) {
      throw new TftpError(ErrorCode.ILLEGAL_OPERATION, "unexpected answer");
    }
    const settings = this.#settings(oack);
    this.oack = oack;
    let session: SendSession | ReceiveSession;
    let ring: number | undefined;
    if (kind === "get") {
      const { decode: dec, flush } = this.#init;
      session = new ReceiveSession(settings, {
        // The payload is a view of the datagram: kept as a copy (decoding makes one).
        write: (p) => (this.#data.push(dec ? dec(p) : p.slice()), true),
        end: () => {
          if (flush) this.#data.push(flush());
          this.#complete = true;
        },
      }, this.#init.maxSize);
    } else {
      const slots = ringSlots(settings.blksize, settings.windowsize);
      const ptr = allocate(slots * (settings.blksize + 4));
      if (ptr === 0) throw new TftpError(ErrorCode.DISK_FULL, "out of memory");
      ring = ptr;
      session = new SendSession(settings, ptr, slots);
    }
    this.phase = phase(this.phase, Phase.TRANSFERRING);
    this.#deadline = Infinity;
    const t = new Transfer({
      id: 1,
      kind: kind === "get" ? "read" : "write",
      address,
      port,
      filename,
      session,
      owner: this,
      now,
      ring,
      capturesViews: this.#init.capturesViews,
    });
    this.#transfer = t;
    if (kind === "put" || oack) t.open(now, true); // ACK 0 answers the OACK; a put starts sending
    else {
      t.open(now, false); // no options: what came is DATA 1, answered as such
      t.receive(data, address, port, now);
    }
    this.#afterTransfer();
  }

  /**
   * A get's data taken so far has been delivered (the caller's sink took it, or failed and
   * called abort): a complete download is acknowledged now, and not before, so that a sink
   * that fails on the last block gets the server an ERROR rather than the last ACK.
   */
  delivered(now: number): void {
    const t = this.#transfer;
    // Past the size it announced, a server is not sending the file it described: stopped at the
    // block that passes it (that block is acknowledged and handed on first, unlike one that
    // passes maxSize, which the session refuses before both), not after its bytes without end.
    const tsize = this.oack?.tsize;
    if (t !== null && tsize !== undefined && this.#init.decode === undefined && this.bytes > Number(tsize) && !t.session.finished) {
      return this.abort(ErrorCode.NOT_DEFINED, `the server sent more than the ${tsize} bytes it announced`, undefined, now);
    }
    if (!this.#complete || t === null) return;
    this.#complete = false;
    t.act((n) => (t.session as ReceiveSession).finish(true, n), now);
    if (this.phase === Phase.TRANSFERRING && !t.session.finished) this.outcome = this.#checkSize() ?? { ok: true, oack: this.oack };
    this.#afterTransfer();
  }

  #afterTransfer(): void {
    const t = this.#transfer;
    if (t === null) return;
    const s = t.session;
    if (!s.finished || this.phase !== Phase.TRANSFERRING) return;
    const f = s.failure;
    if (f === null) {
      this.phase = phase(this.phase, Phase.DONE);
      this.outcome ??= { ok: true, oack: this.oack };
      return;
    }
    this.phase = phase(this.phase, Phase.FAILED);
    const cause = this.#cause === undefined ? undefined : { cause: this.#cause };
    this.outcome = { ok: false, error: f.byPeer ? new TftpServerError(f.code, f.message) : new TftpError(f.code, f.message, cause) };
  }

  /**
   * The size announced is a promise (boot clients size their buffers by it): a server that
   * broke it sent something other than the file it described.
   */
  #checkSize(): Outcome | null {
    const tsize = this.oack?.tsize;
    if (tsize === undefined || this.#init.decode !== undefined) return null;
    const received = this.bytes;
    if (received === Number(tsize)) return null;
    return { ok: false, error: new TftpError(ErrorCode.NOT_DEFINED, `received ${received} bytes where the server announced tsize ${tsize}`) };
  }

  // TransferOwner

  send(_t: Transfer, address: string, port: number, datagrams: Uint8Array[], owned: boolean): void {
    this.#out.push({ address, port, datagrams, owned });
  }

  fill(_t: Transfer, target: FillTarget): void {
    this.#fill = target;
  }

  confirmed(): void {}
  stored(): void {}
  finished(): void {}

  released(): void {
    this.socketFree = true;
  }
}
