/**
 * The server engine: takes requests on the listening port, routes them to
 * handlers, and runs each accepted request as a {@link Transfer} on a port of
 * its own (or on the listening port in single-port mode). Keeps the table of
 * live transfers, enforces the limits, and runs the one ticker that drives
 * every transfer's timeouts.
 *
 * Nothing thrown by a handler reaches the runtime: a TftpError becomes that
 * ERROR, anything else ERROR 0 with a generic message, and is reported to onError.
 */
import { decode, encodeError, encodeOack, NetasciiDecoder } from "./codec.ts";
import { allocate, release } from "./arena.ts";
import { type BlockSource, NetasciiSource, type ReadBody, toSource, UploadStream } from "./body.ts";
import { TftpError } from "./errors.ts";
import { negotiate, type NegotiationLimits, type Negotiated } from "./options.ts";
import { checkLimits, type OptionLimits, type PolicyContext } from "./policy.ts";
import { rewriteName, type RewriteRule } from "./remap.ts";
import { ErrorCode, type Mode, type Options, type RequestPacket } from "./packet.ts";
import type { Router } from "./router.ts";
import { RateLimiter } from "./rate_limit.ts";
import { ReceiveSession, ringPlan, SendSession, State } from "./session.ts";
import { Transfer } from "./transfer.ts";
import type { DatagramTransport, MessageHandler, Runtime } from "./transport.ts";

/**
 * The longest datagram a read transfer's socket takes whole: an ACK is 4 bytes,
 * and an ERROR's message beyond this is cut (the codec takes an ERROR without its
 * closing NUL). Deno keeps a receive buffer this size per socket, so with 10,000
 * stalled transfers 1 KiB here held 10 MiB.
 */
const READ_SOCKET_DATAGRAM = 128;

/** What a handler knows about a request. */
export interface RequestContext {
  /** The client's address and port (its transfer ID). */
  address: string;
  port: number;
  /**
   * The file name routes matched: the client's, after the server's `rewrite` rules (without
   * rules, as the client sent it), decoded as UTF-8 (bytes that are not become U+FFFD, which serveDir refuses).
   */
  filename: string;
  /** The file name as the client sent it, before any rewrite. */
  requested: string;
  /** Named groups of the route's pattern. */
  params: Record<string, string>;
  mode: Mode;
  /** The options the client asked for (names lower-cased). */
  options: Options;
}

export type ReadHandler = (ctx: RequestContext) => ReadBody | Promise<ReadBody>;

export interface WriteContext extends RequestContext {
  /** The size the client announced (tsize option), if it did. */
  size?: number;
}

export interface UploadContext extends WriteContext {
  /** The uploaded bytes, as they arrive (netascii already converted). */
  body: ReadableStream<Uint8Array>;
  /**
   * Aborted once the upload can no longer succeed: the transfer failed, or the
   * handler ran past its deadline and the client was told so. A handler that
   * commits the upload (a rename, a database write) checks it just before.
   */
  signal: AbortSignal;
}

export interface WriteRoute {
  /** Runs before anything is acknowledged: false (or a TftpError) refuses the upload. */
  accept?: (ctx: WriteContext) => boolean | void | Promise<boolean | void>;
  /** Consumes the upload. false or a throw refuses it: the client gets an ERROR, not the last ACK. */
  handle: (ctx: UploadContext) => unknown | Promise<unknown>;
}

/**
 * One per transfer, when it ends; none for a transfer that ended without a word because the
 * client answered another one for the same request (see MAX_SIBLINGS): that one reports it.
 */
export interface TransferEvent {
  kind: "read" | "write";
  address: string;
  port: number;
  filename: string;
  /** The name the client sent, when a rewrite rule changed it into `filename`. */
  requested?: string;
  /** Payload bytes delivered. */
  bytes: number;
  durationMs: number;
  retransmits: number;
  blksize: number;
  windowsize: number;
  /**
   * A read's smallest burst: the fewest blocks sent back to back before a pause. The
   * windowsize unless the path dropped bursts (a boot loader's card with one receive
   * buffer takes only the first of each), down to 1. For a write, the windowsize.
   */
  minBurst: number;
  /** The options the server accepted (the OACK), or null. */
  options: Options | null;
  /** The transfer mode the client asked for. */
  mode: Mode;
  /** The options the client asked for (names lower-cased). */
  asked: Options;
  /** DATA blocks delivered: acknowledged by the client (read), or received in order (write). */
  blocks: number;
  /** How long the request's handler took to answer (a read handler, a write's accept), when one ran. */
  handlerMs?: number;
  /** Set when no transfer started: the request was refused with an ERROR, or dropped unanswered. */
  refused?: true;
  /** Why a refused request or a failed transfer failed, from a small fixed set (metrics use it as a label). */
  reason?: FailureReason;
  outcome: "ok" | "failed";
  /** Set when the transfer failed: the ERROR sent or received (or, with `dropped`, the reason for the silence). */
  error?: { code: number; message: string; byPeer: boolean };
  /**
   * Set when requests were dropped unanswered because the server was full or the
   * address over its rate (boot ROMs retry on silence, but give up on an ERROR): how
   * many since the last such event, this one included. The event describes the latest
   * of them; there is at most one such event a second, so a flood does not flood the log.
   */
  dropped?: number;
}

/**
 * Why a request was refused or a transfer failed. `client_error`: the client sent an ERROR;
 * `timeout`: the client stopped answering; `other`: any other ERROR (a handler's own ERROR 0).
 */
export type FailureReason =
  | "not_found"
  | "access"
  | "disk_full"
  | "bad_request"
  | "handler_error"
  | "handler_timeout"
  | "busy"
  | "rate"
  | "shutting_down"
  | "timeout"
  | "client_error"
  | "other";

/** The event of a request refused (an ERROR sent) or dropped: no transfer ran. */
function refusalEvent(req: RequestPacket, address: string, port: number, error: { code: number; message: string }): TransferEvent {
  return {
    kind: req.op === 1 ? "read" : "write",
    address,
    port,
    filename: req.filename,
    bytes: 0,
    blocks: 0,
    mode: req.mode,
    asked: req.options,
    refused: true,
    durationMs: 0,
    retransmits: 0,
    blksize: 512,
    windowsize: 1,
    minBurst: 1,
    options: null,
    outcome: "failed",
    error: { ...error, byPeer: false },
  };
}

/** The ERROR 0 messages this engine sends, by what they mean. */
const CODE0_REASONS: Record<string, FailureReason> = {
  "timed out": "timeout",
  "server shutting down": "shutting_down",
  "internal server error": "handler_error",
  "handler timed out": "handler_timeout",
  "too many requests": "rate",
};

function reasonOf(error: { code: number; message: string; byPeer: boolean }): FailureReason {
  if (error.byPeer) return "client_error";
  switch (error.code) {
    case ErrorCode.FILE_NOT_FOUND:
      return "not_found";
    case ErrorCode.ACCESS_VIOLATION:
      return "access";
    case ErrorCode.DISK_FULL:
      return "disk_full";
    case ErrorCode.ILLEGAL_OPERATION:
    case 8: // option negotiation refused (RFC 2347)
      return "bad_request";
    case ErrorCode.NOT_DEFINED:
      // "server busy", "server busy: no port for the transfer", "server busy: too many open files"
      return error.message.startsWith("server busy") ? "busy" : CODE0_REASONS[error.message] ?? "other";
  }
  return "other";
}

/** One per transfer, when it starts: the request was accepted and its first packet goes out. */
export interface TransferStart {
  kind: "read" | "write";
  address: string;
  port: number;
  filename: string;
  /** The name the client sent, when a rewrite rule changed it into `filename`. */
  requested?: string;
  mode: Mode;
  /** The options the client asked for. */
  asked: Options;
  /** The options granted (the OACK), or null. */
  granted: Options | null;
  blksize: number;
  windowsize: number;
  /** How long the request's handler took to answer, when one ran. */
  handlerMs?: number;
}

export interface EngineSettings {
  hostname: string;
  port: number;
  timeoutMs: number;
  retries: number;
  maxBlksize: number;
  maxWindowsize: number;
  maxSessions: number;
  maxRequestsPerSecond: number;
  handlerTimeoutMs: number;
  maxUploadSize: number;
  singlePort: boolean;
  drainTimeoutMs: number;
  /** Rules applied to each requested name before routing (core/remap.ts). */
  rewrite?: readonly RewriteRule[];
  /** Per-request option limits (core/policy.ts). */
  optionLimits?: (ctx: PolicyContext) => OptionLimits | undefined | void | Promise<OptionLimits | undefined | void>;
  onTransfer?: (event: TransferEvent) => void;
  onTransferStart?: (event: TransferStart) => void;
  /** Ports for transfers, [first, last]; default any free one. */
  portRange?: [number, number];
  /** A bound socket to listen on, by file descriptor, instead of hostname and port. */
  fd?: number;
  onError: (error: unknown, context: string) => void;
}

const keyOf = (address: string, port: number) => `${address}|${port}`;

/**
 * Transfers one client port may hold before any is confirmed (see #request): a
 * re-request starts a new one, as tftpd-hpa does, but not without bound.
 */
export const MAX_SIBLINGS = 4;

/** Same operation, file, mode and options: a repeat of the request, not a new one. */
function sameRequest(a: RequestPacket, b: RequestPacket): boolean {
  if (a.op !== b.op || a.filename !== b.filename || a.mode !== b.mode) return false;
  const ka = Object.keys(a.options);
  return ka.length === Object.keys(b.options).length && ka.every((k) => a.options[k] === b.options[k]);
}

/** An upload that is complete and acknowledged, waiting only in case the last ACK was lost. */
function uploadDallying(t: Transfer): boolean {
  return t.session instanceof ReceiveSession && t.session.state === State.DALLYING;
}

export class Engine {
  #runtime: Runtime;
  #reads: Router<ReadHandler>;
  #writes: Router<WriteRoute>;
  #s: EngineSettings;
  #main: DatagramTransport | null = null;
  /**
   * Live transfers by client (address, port). More than one only in multi-port mode,
   * while none is confirmed: siblings answering the same client port (see #request).
   * The arrays are replaced, never changed, so a loop over one survives a transfer's end.
   */
  #transfers = new Map<string, Transfer[]>();
  #live = 0;
  #pending = new Set<string>();
  /** Write handlers still running (see close()). */
  #handlers = new Set<Promise<void>>();
  #ticker: { stop(): void } | null = null;
  #closing = false;
  #idle: (() => void)[] = [];
  #mainSending = 0;
  #mainDrained: (() => void)[] = [];
  #details = new WeakMap<Transfer, { negotiated: Negotiated; request: RequestPacket; renamed?: string }>();
  /**
   * The rewritten name of a request, for its event. The transfer keeps the client's name: a
   * repeated request is recognized by it (see #request).
   */
  #renamed = new WeakMap<RequestPacket, string>();
  #rate: RateLimiter;
  /** portRange's ports held by live sockets of ours, and where the next search starts. */
  #portsTaken = new Set<number>();
  #nextPort = 0;
  /** How long each request's handler took (see #timed). */
  #handlerMs = new WeakMap<RequestPacket, number>();
  /** Uploads whose event went out at their last ACK (see #stored). */
  #reported = new WeakSet<Transfer>();
  /** Requests dropped since the last report (see TransferEvent.dropped), and the latest of them. */
  #drops: { count: number; last: TransferEvent } | null = null;
  #dropTimer: { stop(): void } | null = null;

  constructor(runtime: Runtime, reads: Router<ReadHandler>, writes: Router<WriteRoute>, settings: EngineSettings) {
    this.#runtime = runtime;
    this.#reads = reads;
    this.#writes = writes;
    this.#s = settings;
    this.#rate = new RateLimiter(settings.maxRequestsPerSecond);
  }

  /**
   * Waits for a handler, at most handlerTimeoutMs. A late result is handed to
   * `late` (to close what it opened) and otherwise ignored.
   */
  #deadline<T>(work: () => T | Promise<T>, late: (value: T) => void = () => {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = this.#runtime.after(this.#s.handlerTimeoutMs, () => {
        done = true;
        reject(new TftpError(ErrorCode.NOT_DEFINED, "handler timed out"));
      });
      Promise.resolve()
        .then(work)
        .then(
          (value) => (done ? late(value) : (timer.stop(), (done = true), resolve(value))),
          (error) => (done ? undefined : (timer.stop(), (done = true), reject(error))),
        );
    });
  }

  /** #deadline, and the time the handler took (or until it failed) noted for the request's events. */
  async #timed<T>(req: RequestPacket, work: () => T | Promise<T>, late?: (value: T) => void): Promise<T> {
    const start = this.#runtime.now();
    try {
      return await this.#deadline(work, late);
    } finally {
      this.#handlerMs.set(req, this.#runtime.now() - start);
    }
  }

  #handlerTime(req: RequestPacket): { handlerMs?: number } {
    const ms = this.#handlerMs.get(req);
    return ms === undefined ? {} : { handlerMs: ms };
  }

  get address(): { address: string; port: number } | null {
    return this.#main ? { address: this.#main.address, port: this.#main.port } : null;
  }

  /** Live transfers plus requests whose handler is still running. */
  get load(): number {
    return this.#live + this.#pending.size;
  }

  async listen(): Promise<void> {
    if (this.#main) throw new Error("already listening");
    this.#closing = false;
    const onMain: MessageHandler = (d, a, p) => this.#onMain(d, a, p);
    const fd = this.#s.fd;
    if (fd !== undefined && this.#runtime.bindFd === undefined) throw new Error("this runtime cannot listen on a socket by file descriptor");
    const main = fd === undefined ? await this.#runtime.bind(this.#s.hostname, this.#s.port, onMain) : await this.#runtime.bindFd!(fd, onMain);
    // Sends on the listening socket are counted, so that close() lets the last ones out first.
    this.#main = {
      address: main.address,
      port: main.port,
      send: (data, port, address, done) => {
        this.#mainSending++;
        main.send(data, port, address, () => {
          this.#mainSending--;
          done();
          if (this.#mainSending === 0) for (const resolve of this.#mainDrained.splice(0)) resolve();
        });
      },
      close: () => main.close(),
    };
  }

  /**
   * Stops taking transfers; live ones get drainTimeoutMs to finish, then ERROR 0.
   * Requests meanwhile are answered ERROR 0 "server shutting down". Write handlers
   * then get up to drainTimeoutMs more to settle (serveDir removes its temporary
   * file), so that a caller that exits right after does not cut their cleanup short.
   */
  async close(): Promise<void> {
    this.#closing = true;
    // Acknowledged uploads only wait in case their last ACK was lost: not worth holding a shutdown for.
    for (const t of this.#allTransfers()) if (uploadDallying(t)) t.act(() => (t.session as ReceiveSession).endDally());
    const bounded = async (wait: (resolve: () => void) => void) => {
      let timer: { stop(): void } | null = null;
      await new Promise<void>((resolve) => {
        wait(resolve);
        timer = this.#runtime.after(this.#s.drainTimeoutMs, resolve);
      });
      (timer as { stop(): void } | null)?.stop();
    };
    if (this.#live > 0) {
      await bounded((resolve) => this.#idle.push(resolve));
      for (const t of [...this.#transfers.values()].flat()) t.act(() => t.session.abort(ErrorCode.NOT_DEFINED, "server shutting down"));
    }
    if (this.#handlers.size > 0) await bounded((resolve) => void Promise.allSettled([...this.#handlers]).then(() => resolve()));
    this.#dropTimer?.stop();
    if (this.#drops && this.#drops.count > 0) this.#emit({ ...this.#drops.last, dropped: this.#drops.count });
    this.#drops = null;
    const main = this.#main;
    this.#main = null;
    this.#ticker?.stop();
    this.#ticker = null;
    if (this.#mainSending > 0) await new Promise<void>((resolve) => this.#mainDrained.push(resolve));
    main?.close();
  }

  /**
   * A socket for a transfer (or a refusal): any free port, or a free one of portRange, tried
   * in turn from where the last search ended. On the listening address (a passed socket's, with fd).
   */
  async #bindTransfer(onMessage: MessageHandler, maxDatagram: number): Promise<DatagramTransport> {
    const host = this.#s.fd !== undefined && this.#main ? this.#main.address : this.#s.hostname;
    const range = this.#s.portRange;
    if (range === undefined) return this.#runtime.bind(host, 0, onMessage, maxDatagram);
    const [first, last] = range;
    const count = last - first + 1;
    let failure: unknown = null;
    for (let i = 0; i < count; i++) {
      const port = first + ((this.#nextPort + i) % count);
      if (this.#portsTaken.has(port)) continue; // one of ours: no need to ask the system
      this.#portsTaken.add(port);
      try {
        const t = await this.#runtime.bind(host, port, onMessage, maxDatagram);
        this.#nextPort = (port - first + 1) % count;
        const taken = this.#portsTaken;
        return {
          address: t.address,
          port: t.port,
          send: (data, toPort, address, done) => t.send(data, toPort, address, done),
          sendMany: t.sendMany ? (datagrams, toPort, address, done) => t.sendMany!(datagrams, toPort, address, done) : undefined,
          close() {
            taken.delete(port);
            t.close();
          },
        };
      } catch (error) {
        this.#portsTaken.delete(port); // another program's: tried again next time
        failure = error;
      }
    }
    throw new Error(`every port of the range ${first}-${last} is in use${failure ? ` (${(failure as Error).message ?? failure})` : ""}`);
  }

  #reply(address: string, port: number, code: number, message: string): void {
    this.#main?.send(encodeError(code, message), port, address, () => {});
  }

  /**
   * Refuses a request from a port of its own, as a transfer would answer: some
   * clients (atftp) only listen for the server's transfer ID after a request.
   */
  #refuse(address: string, port: number, code: number, message: string): void {
    if (this.#s.singlePort) return this.#reply(address, port, code, message);
    this.#bindTransfer(() => {}, 4).then(
      (t) => t.send(encodeError(code, message), port, address, () => t.close()),
      () => this.#reply(address, port, code, message),
    );
  }

  #onMain(data: Uint8Array, address: string, port: number): void {
    // Port 0 is not a port a datagram can come from, nor one an answer can go to (a forged or
    // broken sender): a transfer would only retransmit into nothing until it timed out.
    if (port === 0) return;
    if (this.#s.singlePort) {
      // One transfer per client port here: every packet of it comes to this socket.
      const t = this.#transfers.get(keyOf(address, port))?.[0];
      if (t) {
        if (!(data.length >= 2 && data[0] === 0 && (data[1] === 1 || data[1] === 2))) return t.receive(data, address, port);
        // A request from the port of a transfer the client has confirmed: a late repeat, ignored.
        // A new request during an upload's dally waits for its end too, unlike with a port per
        // transfer (see #request): here the new transfer would share the upload's key, and a late
        // copy of the upload's last DATA would reach it (a download would abort with ERROR 4, an
        // upload could take it for its own block 1). The dally keeps that window shut.
        if (t.session.peerConfirmed) return;
        const req = decode(data);
        if (req.op !== 1 && req.op !== 2) return;
        // Unconfirmed: the client missed our first packet (resent at once, not at the next
        // timeout), or it wants something else now (the old transfer gives way without a word).
        if (sameRequest(req, this.#details.get(t)!.request)) return t.act((now) => t.session.resendNow(now));
        t.act(() => t.session.drop("replaced by the client's next request"));
      }
    }
    // An ERROR is never answered, even one too short to decode (two or three bytes): answering
    // it would let two confused peers volley ERRORs forever.
    if (data.length >= 2 && data[0] === 0 && data[1] === 5) return;
    const packet = decode(data);
    if (packet.op === 0) return this.#reply(address, port, ErrorCode.ILLEGAL_OPERATION, packet.message);
    if (packet.op === 1 || packet.op === 2) {
      this.#request(packet, address, port).catch((e) => this.#s.onError(e, "request"));
      return;
    }
    this.#reply(address, port, ErrorCode.UNKNOWN_TID, "unknown transfer ID");
  }

  async #request(req: RequestPacket, address: string, port: number): Promise<void> {
    const key = keyOf(address, port);
    for (const earlier of this.#transfers.get(key) ?? []) {
      if (uploadDallying(earlier) && !(req.op === 2 && req.filename === earlier.filename)) {
        // Another request from the port of an upload that is complete and acknowledged: the client
        // moved on (had it missed our last ACK, it would resend its last DATA). tftp-hpa sends every
        // command of a session from one port, and the OS hands a freed port out again. Ignored as a
        // repeat, it would go unanswered for the whole dally. The same WRQ again still counts as a
        // repeat: a late copy of the upload's own request must not start it over. (Single-port
        // mode never gets here with a live key: see #onMain.)
        earlier.act(() => (earlier.session as ReceiveSession).endDally());
      }
    }
    if (this.#pending.has(key)) return; // repeated while its handler runs, which will answer it
    const live = this.#transfers.get(key) ?? [];
    // A request from the port of a transfer the client has confirmed is a late repeat. Before the
    // client confirms one, it is answered at once with a transfer of its own, as tftpd-hpa does: the
    // client may have missed our first packet, or refused it (a PXE ROM asks for tsize alone, sends
    // ERROR 8 and asks again from the same port at once; that ERROR reaches the old transfer's
    // socket, maybe after this request). The first sibling the client confirms ends the others
    // (#confirmed). MAX_SIBLINGS bounds what a burst of copies costs; each is rate-limited below.
    if (live.length >= MAX_SIBLINGS || live.some((t) => t.session.peerConfirmed)) return;
    if (this.#closing) return this.#reply(address, port, ErrorCode.NOT_DEFINED, "server shutting down");
    // Overload is met with silence: a PXE ROM gives up on an ERROR but retries on silence, and
    // in a boot storm its retry finds a free session; under a flood, silence is also cheaper.
    if (this.load >= this.#s.maxSessions) return this.#drop(req, address, port, "server busy");
    if (!this.#rate.take(address, this.#runtime.now())) return this.#drop(req, address, port, "too many requests");
    this.#pending.add(key);
    try {
      // Refused like any request that cannot be served: an ERROR, and a failed transfer event (a log line).
      if (req.mode === "mail") throw new TftpError(ErrorCode.ILLEGAL_OPERATION, "mail mode is not supported");
      if (req.op === 1) await this.#startRead(req, address, port, key);
      else await this.#startWrite(req, address, port, key);
    } catch (error) {
      let refusal = { code: ErrorCode.NOT_DEFINED as number, message: "internal server error" };
      if (error instanceof TftpError) refusal = { code: error.code, message: error.message };
      else this.#s.onError(error, `${req.op === 1 ? "read" : "write"} handler for ${req.filename}`);
      this.#refuse(address, port, refusal.code, refusal.message);
      const renamed = this.#renamed.get(req);
      this.#emit({
        ...refusalEvent(req, address, port, refusal),
        filename: renamed ?? req.filename,
        ...(renamed !== undefined && renamed !== req.filename ? { requested: req.filename } : {}),
        ...this.#handlerTime(req),
      });
    } finally {
      this.#pending.delete(key);
    }
  }

  /** The server's limits, lowered or withheld for this request by the optionLimits hook. */
  async #limits(kind: "read" | "write", req: RequestPacket, filename: string, address: string, port: number): Promise<NegotiationLimits> {
    const base: NegotiationLimits = { maxBlksize: this.#s.maxBlksize, maxWindowsize: this.#s.maxWindowsize, timeoutMs: this.#s.timeoutMs };
    const hook = this.#s.optionLimits;
    if (hook === undefined) return base;
    const ctx: PolicyContext = { kind, address, port, filename, requested: req.filename, mode: req.mode, options: req.options };
    const got = await this.#deadline(() => hook(ctx));
    if (got === undefined || got === null) return base;
    const l = checkLimits(got);
    return {
      ...base,
      maxBlksize: Math.min(base.maxBlksize, l.maxBlksize ?? Infinity),
      maxWindowsize: Math.min(base.maxWindowsize, l.maxWindowsize ?? Infinity),
      blksize: l.blksize,
      windowsize: l.windowsize,
      tsize: l.tsize,
      timeout: l.timeout,
      rollover: l.rollover,
    };
  }

  /** The name routes see: the requested one after the rewrite rules, or a refusal (ERROR 2, as tftpd-hpa sends). */
  #rewrite(kind: "read" | "write", req: RequestPacket, address: string): string {
    const rules = this.#s.rewrite;
    if (rules === undefined || rules.length === 0) return req.filename;
    const r = rewriteName(rules, req.filename, { kind, address });
    if (r.ok) {
      this.#renamed.set(req, r.filename);
      return r.filename;
    }
    if (r.problem) this.#s.onError(new Error(r.problem), "rewrite");
    throw new TftpError(ErrorCode.ACCESS_VIOLATION, r.message);
  }

  /** Drops a request unanswered, and tells the operator: the first at once, then a count at most once a second. */
  #drop(req: RequestPacket, address: string, port: number, reason: string): void {
    const event = refusalEvent(req, address, port, { code: ErrorCode.NOT_DEFINED, message: reason });
    if (this.#drops !== null) {
      this.#drops.count++;
      this.#drops.last = event;
      return;
    }
    this.#emit({ ...event, dropped: 1 });
    this.#drops = { count: 0, last: event };
    const report = () => {
      const d = this.#drops!;
      if (d.count === 0) {
        this.#drops = null;
        this.#dropTimer = null;
        return;
      }
      this.#emit({ ...d.last, dropped: d.count });
      d.count = 0;
      this.#dropTimer = this.#runtime.after(1000, report);
    };
    this.#dropTimer = this.#runtime.after(1000, report);
  }

  async #startRead(req: RequestPacket, address: string, port: number, key: string): Promise<void> {
    const filename = this.#rewrite("read", req, address);
    const match = this.#reads.match(filename);
    if (match === null) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    const limits = await this.#limits("read", req, filename, address, port);
    const ctx: RequestContext = { address, port, filename, requested: req.filename, params: match.params, mode: req.mode, options: req.options };
    const body = await this.#timed(req, () => match.handler(ctx), (late) => {
      // The client was told the handler timed out; close what it opened meanwhile.
      try {
        const src = toSource(late);
        if (src) Promise.resolve(src.close()).catch(() => {});
      } catch { /* not a body: nothing to close */ }
    });
    let source: BlockSource | null = toSource(body);
    if (source === null) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    let ring = 0;
    let ringBytes = 0;
    try {
      if (req.mode === "netascii") source = new NetasciiSource(source);
      // An empty file's tsize is not told: curl refuses an OACK with tsize 0 ("invalid tsize"), and a
      // client loses nothing by not knowing a size of zero. With nothing else asked, no OACK at all.
      const told = source.size === 0 ? undefined : source.size;
      const negotiated = negotiate("read", req.mode, req.options, limits, told);
      const { first: slots, full: fullSlots } = ringPlan(negotiated.blksize, negotiated.windowsize, source.size, negotiated.reply !== null);
      ringBytes = slots * (negotiated.blksize + 4);
      ring = allocate(ringBytes);
      if (ring === 0) throw new TftpError(ErrorCode.DISK_FULL, "server out of memory");
      const session = new SendSession(this.#settings(negotiated), ring, slots, fullSlots);
      await this.#launch(key, req, address, port, session, negotiated, { source, ring: { ptr: ring, bytes: ringBytes } });
    } catch (error) {
      if (ring !== 0) release(ring);
      await Promise.resolve(source.close()).catch(() => {});
      throw error;
    }
  }

  async #startWrite(req: RequestPacket, address: string, port: number, key: string): Promise<void> {
    const filename = this.#rewrite("write", req, address);
    const match = this.#writes.match(filename);
    if (match === null) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "writing this file is not allowed");
    const negotiated = negotiate("write", req.mode, req.options, await this.#limits("write", req, filename, address, port));
    const size = negotiated.announcedSize;
    if (size !== undefined && size > this.#s.maxUploadSize) {
      throw new TftpError(ErrorCode.DISK_FULL, `file too large: the limit is ${this.#s.maxUploadSize} bytes`);
    }
    const ctx: WriteContext = { address, port, filename, requested: req.filename, params: match.params, mode: req.mode, options: req.options, size };
    const route = match.handler;
    const accept = route.accept;
    if (accept && (await this.#timed(req, () => accept(ctx))) === false) {
      throw new TftpError(ErrorCode.ACCESS_VIOLATION, "upload refused");
    }

    const upload = new UploadStream();
    const netascii = req.mode === "netascii" ? new NetasciiDecoder() : null;
    const session = new ReceiveSession(this.#settings(negotiated), {
      // The datagram's buffer belongs to the adapter: push() copies it into the chunk being gathered.
      write: (payload) => upload.push(netascii ? netascii.push(payload) : payload),
      end: () => {
        if (netascii) {
          const tail = netascii.end();
          if (tail.length > 0) upload.push(tail);
        }
        upload.end();
        queueMicrotask(decide); // the verdict may be in already
        // A verdict that never comes must not hold the client (and a session) forever.
        verdictTimer = this.#runtime.after(this.#s.handlerTimeoutMs, () => {
          if (verdict === null) {
            verdict = { ok: false, code: ErrorCode.NOT_DEFINED, message: "handler timed out" };
            // The client hears of a failure: the handler must not commit the upload after all.
            upload.fail(new TftpError(ErrorCode.NOT_DEFINED, "handler timed out"));
            decide();
          }
        });
      },
    }, this.#s.maxUploadSize);
    const t = await this.#launch(key, req, address, port, session, negotiated, { upload });
    upload.onDrain(() => t.act((now) => session.resume(now)));

    // The handler runs alongside the transfer; its verdict decides the last ACK.
    // deno-lint-ignore no-this-alias -- decide() below is a function with a `this` of its own
    const engine = this;
    let verdict: { ok: true } | { ok: false; code: number; message: string } | null = null;
    let verdictTimer: { stop(): void } | null = null;
    function decide() {
      const v = verdict;
      if (v === null) return;
      verdictTimer?.stop();
      if (!v.ok) {
        t.act((now) => (session.state === "finishing" ? session.finish(false, now, v.code, v.message) : session.abort(v.code, v.message)));
      } else if (session.state === "finishing") {
        t.act((now) => session.finish(true, now));
        // Stored and acknowledged: the transfer is done for the client, whatever the dally brings.
        if ((session.state as State) === State.DALLYING) engine.#stored(t);
      }
      else {
        // The handler is done before the upload is: take the rest without queueing it.
        upload.discard();
        t.act((now) => session.resume(now));
      }
    }
    const handling = Promise.resolve()
      .then(() => route.handle({ ...ctx, body: upload.stream, signal: upload.signal }))
      .then(
        (result) => {
          if (verdict !== null) return; // already timed out
          verdict = result === false ? { ok: false, code: ErrorCode.ACCESS_VIOLATION, message: "upload refused" } : { ok: true };
        },
        (error) => {
          if (verdict !== null) return;
          if (error instanceof TftpError) verdict = { ok: false, code: error.code, message: error.message };
          else {
            if (!session.finished) this.#s.onError(error, `write handler for ${req.filename}`);
            verdict = { ok: false, code: ErrorCode.NOT_DEFINED, message: "internal server error" };
          }
        },
      )
      .then(decide);
    // close() waits for it (bounded): the handler may still be cleaning up after a failed upload.
    this.#handlers.add(handling);
    const settled = () => void this.#handlers.delete(handling);
    handling.then(settled, (error) => (settled(), this.#s.onError(error, `write verdict for ${req.filename}`)));
  }

  #settings(n: Negotiated) {
    return {
      blksize: n.blksize,
      windowsize: n.windowsize,
      timeoutMs: n.timeoutMs,
      retries: this.#s.retries,
      oack: n.reply ? encodeOack(n.reply) : null,
      backoff: true,
      rollover: n.rollover,
    };
  }

  async #launch(
    key: string,
    req: RequestPacket,
    address: string,
    port: number,
    session: SendSession | ReceiveSession,
    negotiated: Negotiated,
    parts: { source?: BlockSource; ring?: { ptr: number; bytes: number }; upload?: UploadStream },
  ): Promise<Transfer> {
    if (this.#closing || this.#main === null) throw new TftpError(ErrorCode.NOT_DEFINED, "server shutting down");
    let transfer: Transfer | null = null;
    let transport: DatagramTransport;
    if (this.#s.singlePort) transport = this.#main;
    else {
      try {
        // A read transfer receives ACKs and ERRORs; an upload, DATA of blksize (one byte more
        // shows a block that is too long, which the session refuses, rather than cutting it).
        const maxDatagram = req.op === 1 ? READ_SOCKET_DATAGRAM : negotiated.blksize + 5;
        transport = await this.#bindTransfer((d, a, p) => transfer?.receive(d, a, p), maxDatagram);
      } catch (error) {
        // Out of file descriptors or ports: the server is full, not broken. The operator
        // hears why (e.g. EMFILE: raise `ulimit -n`); the client hears "busy".
        this.#s.onError(error, `binding a port for ${req.filename} from ${address}:${port}`);
        throw new TftpError(ErrorCode.NOT_DEFINED, "server busy: no port for the transfer");
      }
    }
    transfer = new Transfer({
      kind: req.op === 1 ? "read" : "write",
      address,
      port,
      filename: req.filename,
      session,
      transport,
      ownsTransport: !this.#s.singlePort,
      now: () => this.#runtime.now(),
      later: (ms, fn) => this.#runtime.after(ms, fn),
      onFinished: (t) => this.#finished(key, t),
      onConfirmed: (t) => this.#confirmed(key, t),
      onError: this.#s.onError,
      ...parts,
    });
    const renamed = this.#renamed.get(req);
    this.#details.set(transfer, { negotiated, request: req, renamed });
    // A sibling (see #request) answers the same request again: one start per request, as one end.
    const first = (this.#transfers.get(key) ?? []).length === 0;
    this.#transfers.set(key, [...(this.#transfers.get(key) ?? []), transfer]);
    this.#live++;
    this.#ensureTicker();
    transfer.start();
    if (first) this.#started({
      kind: transfer.kind,
      address,
      port,
      filename: renamed ?? req.filename,
      ...(renamed !== undefined && renamed !== req.filename ? { requested: req.filename } : {}),
      mode: req.mode,
      asked: req.options,
      granted: negotiated.reply,
      blksize: negotiated.blksize,
      windowsize: negotiated.windowsize,
      ...this.#handlerTime(req),
    });
    return transfer;
  }

  #ensureTicker(): void {
    if (this.#ticker) return;
    const every = Math.max(10, Math.min(100, Math.floor(this.#s.timeoutMs / 4)));
    this.#ticker = this.#runtime.startTicker(every, () => this.tick());
  }

  /** Runs every due timeout. The runtime calls it from the ticker; tests call it with a fake clock. */
  tick(): void {
    const now = this.#runtime.now();
    for (const list of this.#transfers.values()) for (const t of list) t.tick(now);
  }

  /** The client answered `t`: its unconfirmed siblings end without a word (their ports close). */
  #confirmed(key: string, t: Transfer): void {
    for (const sibling of this.#transfers.get(key) ?? []) {
      if (sibling !== t) sibling.act(() => sibling.session.drop("the client took another answer to its request"));
    }
  }

  #finished(key: string, t: Transfer): void {
    const list = this.#transfers.get(key) ?? [];
    if (list.includes(t)) {
      this.#live--;
      if (list.length === 1) this.#transfers.delete(key);
      else this.#transfers.set(key, list.filter((x) => x !== t));
    }
    if (this.#live === 0) {
      this.#ticker?.stop();
      this.#ticker = null;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
    // Dropped for a sibling or a newer request: that one reports the client's request.
    if (t.session.dropped || this.#reported.has(t)) return;
    this.#emit(this.#endEvent(t));
  }

  /** An upload stored and acknowledged: its event now, with its own duration, not after the dally. */
  #stored(t: Transfer): void {
    this.#reported.add(t);
    this.#emit(this.#endEvent(t));
  }

  #endEvent(t: Transfer): TransferEvent {
    const { negotiated: n, renamed, request } = this.#details.get(t)!;
    const s = t.session;
    const event: TransferEvent = {
      kind: t.kind,
      address: t.address,
      port: t.port,
      filename: renamed ?? t.filename,
      mode: request.mode,
      asked: request.options,
      bytes: s.bytes,
      blocks: s instanceof SendSession ? s.acked : s.expected - 1,
      durationMs: this.#runtime.now() - t.startedAt,
      retransmits: s.retransmits,
      blksize: n.blksize,
      windowsize: n.windowsize,
      minBurst: s instanceof SendSession ? s.minBurst : n.windowsize,
      options: n.reply,
      outcome: s.state === State.DONE || s.state === State.DALLYING ? "ok" : "failed",
      ...this.#handlerTime(request),
    };
    if (renamed !== undefined && renamed !== t.filename) event.requested = t.filename;
    if (s.failure) event.error = { ...s.failure };
    return event;
  }

  #started(event: TransferStart): void {
    try {
      this.#s.onTransferStart?.(event);
    } catch (error) {
      this.#s.onError(error, "onTransferStart");
    }
  }

  /** Every live transfer. */
  #allTransfers(): Transfer[] {
    return [...this.#transfers.values()].flat();
  }

  #emit(event: TransferEvent): void {
    if (event.outcome === "failed" && event.error && event.reason === undefined) event.reason = reasonOf(event.error);
    try {
      this.#s.onTransfer?.(event);
    } catch (error) {
      this.#s.onError(error, "onTransfer");
    }
  }
}
