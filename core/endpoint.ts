/**
 * The server as one state machine, sans I/O (in the shape of h11's and aioquic's
 * connections). Datagrams come in with their source, the local socket and `now`;
 * datagrams go out in batches (`takeBatches`), grouped by socket and destination;
 * events go out (`takeEvents`): a request to route, a fill wanted, a socket to
 * open or close, a transfer started or ended. The runner of the endpoint (a
 * driver: drivers/server.ts) answers with commands: the request's limits, accept
 * or refuse, blocks filled, sends done, an upload's verdict. It calls
 * `handleTimer` once `now` reaches `nextTimer`.
 *
 * Everything that decides lives here: transfer IDs and siblings, dally
 * arbitration, overload and rate limits, handler deadlines, the upload verdict's
 * deadline, drain on close. No clock, timer, promise or socket: time is `now`.
 */
import { decode, encodeError, encodeOack } from "./codec.ts";
import { allocate, release } from "./arena.ts";
import { type FillTarget, UploadStream } from "./body.ts";
import { DropCounter } from "./drops.ts";
import { Pending, Stage, stage } from "./pending.ts";
import type { RequestInfo } from "./routes.ts";
import { endEvent, type FailureReason, reasonOf, refusalEvent, refusedEvent, startEvent, type TransferDetails, type TransferEvent, type TransferStart } from "./events.ts";
import { transitions } from "./machine.ts";
import { negotiate, type NegotiationLimits, type Negotiated } from "./options.ts";
import { checkLimits, type OptionLimits } from "./policy.ts";
import { rewriteName } from "./remap.ts";
import type { ResolvedSettings } from "./settings.ts";
import { ErrorCode, Opcode, type RequestPacket } from "./packet.ts";
import { RateLimiter } from "./rate_limit.ts";
import { ReceiveSession, ringPlan, SendSession, type SessionSettings, State } from "./session.ts";
import { TimerHeap, type Timed } from "./timer_heap.ts";
import { Phase, Transfer, type TransferOwner, type UploadVerdict } from "./transfer.ts";

export type { FailureReason, RequestInfo, TransferEvent, TransferStart, UploadVerdict };

/**
 * The longest datagram a read transfer's socket takes whole: an ACK is 4 bytes,
 * and an ERROR's message beyond this is cut (the codec takes an ERROR without its
 * closing NUL). Drivers that keep a receive buffer per socket (Deno) size it so:
 * with thousands of stalled transfers, every byte here counts thousands of times.
 */
export const READ_SOCKET_DATAGRAM = 128;

/**
 * Transfers one client port may hold before any is confirmed (see #request): a
 * re-request starts a new one, as tftpd-hpa does, but not without bound.
 */
export const MAX_SIBLINGS = 4;

/** Dropped requests are reported at most this often (see TransferEvent.dropped). */
export const DROP_REPORT_MS = 1000;

/** What the endpoint decides by (core/settings.ts checks them). */
export type EndpointSettings = Pick<
  ResolvedSettings,
  | "timeoutMs" | "retries" | "maxBlksize" | "maxWindowsize" | "maxSessions" | "maxRequestsPerSecond"
  | "handlerTimeoutMs" | "maxUploadSize" | "singlePort" | "drainTimeoutMs" | "rewrite"
>;

/** Socket 0 is the listening one; any other is the socket of the transfer with that id. */
export type SocketId = number;

export interface Batch {
  socket: SocketId;
  /** Send from a socket of its own, opened for this batch and closed after (a refusal: see #refuse). */
  fresh?: true;
  address: string;
  port: number;
  datagrams: Uint8Array[];
  /** The transfer whose ring memory the datagrams are: report them with `sent(owner, n)`. 0 for none. */
  owner: number;
}

export type EndpointEvent =
  /** Route it, then answer with `limits`, and `acceptRead`/`acceptWrite` or `refuse`. */
  | { type: "request"; id: number; request: RequestInfo }
  /** Bind a socket for the transfer (largest datagram it must take whole), then `opened` or `openFailed`. */
  | { type: "open"; transfer: number; maxDatagram: number; label: string }
  | { type: "close"; socket: SocketId }
  /** Fill the target from the transfer's source, then `filled` or `fillFailed`. */
  | { type: "fill"; transfer: number; target: FillTarget }
  /** The transfer is over: close its source. */
  | { type: "ended"; transfer: number }
  | { type: "started"; event: TransferStart }
  /** A transfer ended, or a request was refused or dropped (onTransfer). */
  | { type: "report"; event: TransferEvent }
  /** Something the operator should hear of (onError). */
  | { type: "problem"; error: unknown; context: string }
  /** close(): transfers are over; the driver answers `settled` once its write handlers have. */
  | { type: "drained" }
  /** close() is complete: the listening socket may close once its sends are out. */
  | { type: "closed" };

/** A deadline of the endpoint's own (drain). */
class Alarm implements Timed {
  wakeAt = Infinity;
  scheduledAt = Infinity;
}

/** listening → draining (close(): transfers get drainTimeoutMs) → settling (write handlers get as long) → closed. */
const Life = { LISTENING: "listening", DRAINING: "draining", SETTLING: "settling", CLOSED: "closed" } as const;
type Life = (typeof Life)[keyof typeof Life];
const life = transitions<Life>("endpoint", {
  listening: ["draining"],
  draining: ["settling"],
  settling: ["closed"],
  closed: [],
});

const keyOf = (address: string, port: number) => `${address}|${port}`;

/** Same operation, file, mode and options as the request a transfer answers: a repeat of it, not a new one. */
function sameRequest(a: RequestPacket, b: RequestInfo): boolean {
  if ((a.op === Opcode.RRQ) !== (b.kind === "read") || a.filename !== b.requested || a.mode !== b.mode) return false;
  const ka = Object.keys(a.options);
  return ka.length === Object.keys(b.options).length && ka.every((k) => a.options[k] === b.options[k]);
}

/** An upload that is complete and acknowledged, waiting only in case the last ACK was lost. */
function uploadDallying(t: Transfer): boolean {
  return t.session instanceof ReceiveSession && t.session.state === State.DALLYING;
}

const isRequest = (data: Uint8Array) => data.length >= 2 && data[0] === 0 && (data[1] === Opcode.RRQ || data[1] === Opcode.WRQ);
const isError = (data: Uint8Array) => data.length >= 2 && data[0] === 0 && data[1] === Opcode.ERROR;

export class ServerEndpoint implements TransferOwner {
  #s: EndpointSettings;
  #life: Life = Life.LISTENING;
  #batches: Batch[] = [];
  #events: EndpointEvent[] = [];
  #heap = new TimerHeap<Transfer | Pending | Alarm>();
  #nextId = 1;
  /**
   * Live transfers by client (address, port). More than one only in multi-port mode,
   * while none is confirmed: siblings answering the same client port (see #request).
   * The arrays are replaced, never changed, so a loop over one survives a transfer's end.
   */
  #byKey = new Map<string, Transfer[]>();
  /** Transfers by id, from their start until their memory is free (fills and sends may report late). */
  #byId = new Map<number, Transfer>();
  #details = new Map<number, TransferDetails>();
  #live = 0;
  #pending = new Map<number, Pending>();
  #pendingKeys = new Set<string>();
  #rate: RateLimiter;
  /** Requests dropped since the last report (see TransferEvent.dropped), and the latest of them. */
  #drops = new DropCounter(DROP_REPORT_MS);
  #drainAlarm = new Alarm();
  /** Session settings shared by transfers without an OACK (see #sessionSettings). */
  #plainSettings = new Map<string, SessionSettings>();

  constructor(settings: EndpointSettings) {
    this.#s = settings;
    this.#rate = new RateLimiter(settings.maxRequestsPerSecond);
  }

  // ---- outputs ----

  /** Datagrams to send now, in order. The caller owns the array. */
  takeBatches(): Batch[] {
    const b = this.#batches;
    if (b.length > 0) this.#batches = [];
    return b;
  }

  takeEvents(): EndpointEvent[] {
    const e = this.#events;
    if (e.length > 0) this.#events = [];
    return e;
  }

  /** When handleTimer next has work (possibly earlier: a wake-up with nothing due is harmless). */
  get nextTimer(): number {
    return this.#heap.next;
  }

  /** Live transfers plus requests whose handler is still running. */
  get load(): number {
    return this.#live + this.#pending.size;
  }

  /** Whether the request still waits for its route's answer (not refused, timed out or accepted). */
  isPending(id: number): boolean {
    return this.#pending.has(id);
  }

  /** Whether the transfer's session is over (a late verdict's errors are not worth reporting then). */
  isFinished(transfer: number): boolean {
    return this.#byId.get(transfer)?.session.finished ?? true;
  }

  // ---- inputs ----

  receive(socket: SocketId, data: Uint8Array, address: string, port: number, now: number): void {
    if (socket !== 0) {
      const t = this.#byId.get(socket);
      if (t) this.#with(t, () => t.receive(data, address, port, now));
      return;
    }
    // Port 0 is not a port a datagram can come from, nor one an answer can go to (a forged or
    // broken sender): a transfer would only retransmit into nothing until it timed out.
    if (port === 0 || this.#life === Life.CLOSED) return;
    if (this.#s.singlePort) {
      // One transfer per client port here: every packet of it comes to this socket.
      const t = this.#byKey.get(keyOf(address, port))?.[0];
      if (t) {
        if (!isRequest(data)) return this.#with(t, () => t.receive(data, address, port, now));
        // A request from the port of a transfer the client has confirmed: a late repeat, ignored.
        // A new request during an upload's dally waits for its end too, unlike with a port per
        // transfer (see #request): here the new transfer would share the upload's key, and a late
        // copy of the upload's last DATA would reach it (a download would abort with ERROR 4, an
        // upload could take it for its own block 1). The dally keeps that window shut.
        if (t.session.peerConfirmed) return;
        const req = decode(data);
        if (req.op !== Opcode.RRQ && req.op !== Opcode.WRQ) return;
        // Unconfirmed: the client missed our first packet (resent at once, not at the next
        // timeout), or it wants something else now (the old transfer gives way without a word).
        if (sameRequest(req, this.#details.get(t.id)!.info)) return this.#with(t, () => t.act((n) => t.session.resendNow(n), now));
        this.#with(t, () => t.act(() => t.session.drop("replaced by the client's next request"), now));
      }
    }
    // An ERROR is never answered, even one too short to decode (two or three bytes): answering
    // it would let two confused peers volley ERRORs forever.
    if (isError(data)) return;
    const packet = decode(data);
    if (packet.op === 0) return this.#reply(address, port, ErrorCode.ILLEGAL_OPERATION, packet.message);
    if (packet.op === Opcode.RRQ || packet.op === Opcode.WRQ) return this.#request(packet, address, port, now);
    this.#reply(address, port, ErrorCode.UNKNOWN_TID, "unknown transfer ID");
  }

  handleTimer(now: number): void {
    for (const item of this.#heap.due(now)) {
      if (item instanceof Transfer) this.#with(item, () => item.handleTimer(now));
      else if (item instanceof Pending) this.#expire(item, now);
      else if (item === this.#drops) this.#reportDrops(this.#drops.due(now));
      else if (item === this.#drainAlarm) this.#drainOver(now);
    }
  }

  /**
   * The optionLimits hook answered (or there is none: `limits` undefined). The request's next
   * stage starts: its route's handler, with a deadline of its own; `timed`: the events report how
   * long that handler took. For a write, the options are negotiated now (the handler sees the size
   * announced); a size over the upload limit is refused with ERROR 3. Null: the request is gone.
   */
  limits(id: number, limits: OptionLimits | undefined | void | null, now: number, timed = true): { size?: number } | null {
    const p = this.#pending.get(id);
    if (p === undefined || p.stage !== Stage.LIMITS) return null;
    const base: NegotiationLimits = { maxBlksize: this.#s.maxBlksize, maxWindowsize: this.#s.maxWindowsize, timeoutMs: this.#s.timeoutMs };
    // Nonsense from the hook throws here, before anything changes: the caller handles it as the handler's throw.
    const l = limits === undefined || limits === null ? null : checkLimits(limits);
    p.limits = l === null ? base : {
      ...base,
      maxBlksize: Math.min(base.maxBlksize, l.maxBlksize ?? Infinity),
      maxWindowsize: Math.min(base.maxWindowsize, l.maxWindowsize ?? Infinity),
      blksize: l.blksize,
      windowsize: l.windowsize,
      tsize: l.tsize,
      timeout: l.timeout,
      rollover: l.rollover,
    };
    let size: number | undefined;
    if (p.info.kind === "write") {
      p.negotiated = negotiate("write", p.req.mode, p.req.options, p.limits);
      size = p.negotiated.announcedSize;
      if (size !== undefined && size > this.#s.maxUploadSize) {
        this.#refuseRequest(p, ErrorCode.DISK_FULL, `file too large: the limit is ${this.#s.maxUploadSize} bytes`, now);
        return null;
      }
    }
    p.stage = stage(p.stage, Stage.HANDLER);
    p.deadline = now + this.#s.handlerTimeoutMs;
    if (timed) p.handlerStart = now;
    this.#heap.schedule(p);
    return size === undefined ? {} : { size };
  }

  /**
   * The read handler's body: `size` when known (answered as tsize), `capturesViews` as the source
   * says (see BlockSource). Returns the transfer's id, or null when the request is gone (refused,
   * timed out): the caller closes the body.
   */
  acceptRead(id: number, body: { size?: number; capturesViews?: boolean }, now: number): number | null {
    const p = this.#answered(id, now);
    if (p === null) return null;
    // An empty file's tsize is not told: curl refuses an OACK with tsize 0 ("invalid tsize"), and a
    // client loses nothing by not knowing a size of zero. With nothing else asked, no OACK at all.
    const told = body.size === 0 ? undefined : body.size;
    const n = negotiate("read", p.req.mode, p.req.options, p.limits!, told);
    const { first: slots, full } = ringPlan(n.blksize, n.windowsize, body.size, n.reply !== null);
    const bytes = slots * (n.blksize + 4);
    const ring = allocate(bytes);
    if (ring === 0) return this.#refuseRequest(p, ErrorCode.DISK_FULL, "server out of memory", now), null;
    const session = new SendSession(this.#sessionSettings(n), ring, slots, full);
    const t = this.#launch(p, session, n, now, { ring, capturesViews: body.capturesViews });
    if (t === null) release(ring);
    return t?.id ?? null;
  }

  /** The write's accept hook agreed (or there is none). Returns the transfer and the stream its handler reads, or null. */
  acceptWrite(id: number, now: number): { transfer: number; upload: UploadStream } | null {
    const p = this.#answered(id, now);
    if (p === null) return null;
    const upload = new UploadStream();
    let t: Transfer | null = null;
    const sink = Transfer.sink(upload, p.req.mode === "netascii", () => t?.dataComplete());
    const session = new ReceiveSession(this.#sessionSettings(p.negotiated!), sink, this.#s.maxUploadSize);
    t = this.#launch(p, session, p.negotiated!, now, { upload: { stream: upload, verdictMs: this.#s.handlerTimeoutMs } });
    return t === null ? null : { transfer: t.id, upload };
  }

  /** Refuses the request with an ERROR (a handler's TftpError, no route, an internal error). */
  refuse(id: number, code: number, message: string, now: number): void {
    const p = this.#pending.get(id);
    if (p !== undefined) this.#refuseRequest(p, code, message, now);
  }

  /** The transfer's socket is bound: its first packet goes out. */
  opened(transfer: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t === undefined || t.phase !== Phase.OPENING) return;
    if (this.#life !== Life.LISTENING) return this.#openFailed(t, ErrorCode.NOT_DEFINED, "server shutting down", now);
    this.#with(t, () => t.open(now));
    const d = this.#details.get(t.id)!;
    if (d.first) this.#events.push({ type: "started", event: startEvent(t, d) });
  }

  /**
   * No socket for the transfer: out of file descriptors or ports, the server is full, not
   * broken. The driver tells the operator why (e.g. EMFILE: raise `ulimit -n`); the client hears "busy".
   */
  openFailed(transfer: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t !== undefined && t.phase === Phase.OPENING) this.#openFailed(t, ErrorCode.NOT_DEFINED, "server busy: no port for the transfer", now);
  }

  filled(transfer: number, n: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t) this.#with(t, () => t.filled(n, now));
  }

  fillFailed(transfer: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t) this.#with(t, () => t.fillFailed("error reading the file", now));
  }

  /** `n` datagrams of the transfer's batches went out (or failed to). */
  sent(transfer: number, n: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t) this.#with(t, () => t.sent(n, now));
  }

  /** The upload's reader wants more: an ACK held back goes out. */
  resume(transfer: number, now: number): void {
    const t = this.#byId.get(transfer);
    if (t) this.#with(t, () => t.act((n) => (t.session as ReceiveSession).resume(n), now));
  }

  /** The write handler's verdict. */
  verdict(transfer: number, v: UploadVerdict, now: number): void {
    const t = this.#byId.get(transfer);
    if (t) this.#with(t, () => t.decide(v, now));
  }

  /**
   * Stops taking transfers; live ones get drainTimeoutMs to finish, then ERROR 0. Requests
   * meanwhile are answered ERROR 0 "server shutting down". Then (event "drained") write handlers
   * get up to drainTimeoutMs more to settle (serveDir removes its temporary file), so that a caller
   * that exits right after does not cut their cleanup short; "closed" ends it.
   */
  close(now: number): void {
    if (this.#life !== Life.LISTENING) return;
    this.#life = life(this.#life, Life.DRAINING);
    // Acknowledged uploads only wait in case their last ACK was lost: not worth holding a shutdown for.
    for (const t of this.#all()) if (uploadDallying(t)) this.#with(t, () => t.act(() => (t.session as ReceiveSession).endDally(), now));
    this.#drainAlarm.wakeAt = now + this.#s.drainTimeoutMs;
    this.#heap.schedule(this.#drainAlarm);
    this.#checkDrained(now);
  }

  /** close(): every write handler has settled. */
  settled(now: number): void {
    if (this.#life === Life.SETTLING) this.#closed(now);
  }

  // ---- the machine ----

  #with(t: Transfer, step: () => void): void {
    step();
    this.#heap.schedule(t);
    if (t.phase === Phase.GONE) this.#byId.delete(t.id);
  }

  #request(req: RequestPacket, address: string, port: number, now: number): void {
    const key = keyOf(address, port);
    for (const earlier of this.#byKey.get(key) ?? []) {
      if (uploadDallying(earlier) && !(req.op === Opcode.WRQ && req.filename === earlier.filename)) {
        // Another request from the port of an upload that is complete and acknowledged: the client
        // moved on (had it missed our last ACK, it would resend its last DATA). tftp-hpa sends every
        // command of a session from one port, and the OS hands a freed port out again. Ignored as a
        // repeat, it would go unanswered for the whole dally. The same WRQ again still counts as a
        // repeat: a late copy of the upload's own request must not start it over. (Single-port
        // mode never gets here with a live key: see receive.)
        this.#with(earlier, () => earlier.act(() => (earlier.session as ReceiveSession).endDally(), now));
      }
    }
    if (this.#pendingKeys.has(key)) return; // repeated while its handler runs, which will answer it
    const live = this.#byKey.get(key) ?? [];
    // A request from the port of a transfer the client has confirmed is a late repeat. Before the
    // client confirms one, it is answered at once with a transfer of its own, as tftpd-hpa does: the
    // client may have missed our first packet, or refused it (a PXE ROM asks for tsize alone, sends
    // ERROR 8 and asks again from the same port at once; that ERROR reaches the old transfer's
    // socket, maybe after this request). The first sibling the client confirms ends the others
    // (confirmed). MAX_SIBLINGS bounds what a burst of copies costs; each is rate-limited below.
    if (live.length >= MAX_SIBLINGS || live.some((t) => t.session.peerConfirmed)) return;
    if (this.#life !== Life.LISTENING) return this.#reply(address, port, ErrorCode.NOT_DEFINED, "server shutting down");
    // Overload is met with silence: a PXE ROM gives up on an ERROR but retries on silence, and
    // in a boot storm its retry finds a free session; under a flood, silence is also cheaper.
    if (this.load >= this.#s.maxSessions) return this.#drop(req, address, port, "server busy", now);
    if (!this.#rate.take(address, now)) return this.#drop(req, address, port, "too many requests", now);
    const kind = req.op === Opcode.RRQ ? "read" : "write";
    const info: RequestInfo = { kind, address, port, filename: req.filename, requested: req.filename, mode: req.mode, options: req.options };
    const p = new Pending(this.#nextId++, key, req, info, now, this.#s.handlerTimeoutMs);
    this.#pending.set(p.id, p);
    this.#pendingKeys.add(key);
    // Refused like any request that cannot be served: an ERROR, and a failed transfer event (a log line).
    if (req.mode === "mail") return this.#refuseRequest(p, ErrorCode.ILLEGAL_OPERATION, "mail mode is not supported", now);
    const rules = this.#s.rewrite;
    if (rules !== undefined && rules.length > 0) {
      const r = rewriteName(rules, req.filename, { kind, address });
      // The name routes see, or a refusal (ERROR 2, as tftpd-hpa sends).
      if (!r.ok) {
        if (r.problem) this.#problem(new Error(r.problem), "rewrite");
        return this.#refuseRequest(p, ErrorCode.ACCESS_VIOLATION, r.message, now);
      }
      info.filename = r.filename;
    }
    this.#heap.schedule(p);
    this.#events.push({ type: "request", id: p.id, request: info });
  }

  /** The handler answered: the request leaves the pending table (null: it had already). */
  #answered(id: number, now: number): Pending | null {
    const p = this.#pending.get(id);
    if (p === undefined || p.stage !== Stage.HANDLER) return null;
    this.#settle(p, now);
    return p;
  }

  #settle(p: Pending, now: number): void {
    if (!Number.isNaN(p.handlerStart) && p.stage === Stage.HANDLER) p.handlerMs = now - p.handlerStart;
    p.stage = stage(p.stage, Stage.DONE);
    this.#pending.delete(p.id);
    this.#pendingKeys.delete(p.key);
    // The request's heap entry stays until its deadline (the handler timeout), and would keep
    // what it holds alive as long: thousands of them, with stalled clients. Dropped in bulk.
    // (Each live transfer and request has an entry: past a quarter more, the rest are stale.
    // Pruning is linear in the entries, so it costs a few steps per request.)
    if (this.#heap.size > 1.25 * (this.load + 2) + 64) this.#heap.prune();
  }

  #expire(p: Pending, _now: number): void {
    if (p.stage === Stage.DONE) return;
    // As of the deadline (the handler took that long), however late the wake-up.
    // An answer that still comes finds the request gone: acceptRead returns null, and the caller closes the body.
    this.#refuseRequest(p, ErrorCode.NOT_DEFINED, "handler timed out", p.deadline);
  }

  #refuseRequest(p: Pending, code: number, message: string, now: number): void {
    if (p.stage === Stage.DONE) return;
    this.#settle(p, now);
    const { address, port } = p.info;
    this.#refuse(address, port, code, message);
    this.#report(refusedEvent(p.info, { code, message }, p.handlerMs));
  }

  #sessionSettings(n: Negotiated): SessionSettings {
    if (n.reply) {
      const oack = encodeOack(n.reply);
      return { blksize: n.blksize, windowsize: n.windowsize, timeoutMs: n.timeoutMs, retries: this.#s.retries, oack, backoff: true, rollover: n.rollover };
    }
    // Without an OACK, sessions differ only by these: one object for all (sessions never change theirs).
    const key = `${n.blksize}/${n.windowsize}/${n.timeoutMs}/${n.rollover}`;
    let settings = this.#plainSettings.get(key);
    if (settings === undefined) {
      if (this.#plainSettings.size >= 64) this.#plainSettings.clear();
      settings = { blksize: n.blksize, windowsize: n.windowsize, timeoutMs: n.timeoutMs, retries: this.#s.retries, oack: null, backoff: true, rollover: n.rollover };
      this.#plainSettings.set(key, settings);
    }
    return settings;
  }

  /** How an accepted request becomes a transfer: its socket asked for (or the listening one), its table entries. */
  #launch(
    p: Pending,
    session: SendSession | ReceiveSession,
    negotiated: Negotiated,
    now: number,
    parts: { ring?: number; capturesViews?: boolean; upload?: { stream: UploadStream; verdictMs: number } },
  ): Transfer | null {
    if (this.#life !== Life.LISTENING) {
      this.#refuse(p.info.address, p.info.port, ErrorCode.NOT_DEFINED, "server shutting down");
      this.#report(refusedEvent(p.info, { code: ErrorCode.NOT_DEFINED, message: "server shutting down" }));
      return null;
    }
    const { address, port } = p.info;
    const t = new Transfer({
      id: this.#nextId++,
      kind: p.info.kind,
      address,
      port,
      filename: p.req.filename,
      session,
      owner: this,
      now,
      ...parts,
    });
    const list = this.#byKey.get(p.key) ?? [];
    this.#details.set(t.id, { granted: negotiated.reply, info: p.info, handlerMs: p.handlerMs, first: list.length === 0 });
    // A literal of one: a spread would reserve room for 16 more, per stalled client.
    this.#byKey.set(p.key, list.length === 0 ? [t] : [...list, t]);
    this.#byId.set(t.id, t);
    this.#live++;
    if (this.#s.singlePort) this.opened(t.id, now);
    else {
      // A read transfer receives ACKs and ERRORs; an upload, DATA of blksize (one byte more
      // shows a block that is too long, which the session refuses, rather than cutting it).
      const maxDatagram = p.info.kind === "read" ? READ_SOCKET_DATAGRAM : negotiated.blksize + 5;
      this.#events.push({ type: "open", transfer: t.id, maxDatagram, label: `${p.req.filename} from ${address}:${port}` });
    }
    return t;
  }

  #openFailed(t: Transfer, code: number, message: string, now: number): void {
    const d = this.#details.get(t.id)!;
    t.cancel();
    this.#byId.delete(t.id);
    this.#unlist(t);
    this.#events.push({ type: "ended", transfer: t.id });
    this.#reply(t.address, t.port, code, message);
    this.#report(refusedEvent(d.info, { code, message }, d.handlerMs));
    this.#details.delete(t.id);
    this.#checkDrained(now);
  }

  #unlist(t: Transfer): boolean {
    const key = keyOf(t.address, t.port);
    const list = this.#byKey.get(key) ?? [];
    if (!list.includes(t)) return false;
    this.#live--;
    if (list.length === 1) this.#byKey.delete(key);
    else this.#byKey.set(key, list.filter((x) => x !== t));
    return true;
  }

  // TransferOwner: what transfers tell the endpoint.

  send(t: Transfer, address: string, port: number, datagrams: Uint8Array[], owned: boolean): void {
    this.#batches.push({ socket: this.#s.singlePort ? 0 : t.id, address, port, datagrams, owner: owned ? t.id : 0 });
  }

  fill(t: Transfer, target: FillTarget): void {
    this.#events.push({ type: "fill", transfer: t.id, target });
  }

  /** The client answered `t`: its unconfirmed siblings end without a word (their ports close). */
  confirmed(t: Transfer, now: number): void {
    for (const sibling of this.#byKey.get(keyOf(t.address, t.port)) ?? []) {
      if (sibling !== t) this.#with(sibling, () => sibling.act(() => sibling.session.drop("the client took another answer to its request"), now));
    }
  }

  /** An upload stored and acknowledged: its event now, with its own duration, not after the dally. */
  stored(t: Transfer, now: number): void {
    const d = this.#details.get(t.id)!;
    d.reported = true;
    this.#report(endEvent(t, d, now));
  }

  finished(t: Transfer, now: number): void {
    const d = this.#details.get(t.id)!;
    this.#unlist(t);
    this.#events.push({ type: "ended", transfer: t.id });
    // Dropped for a sibling or a newer request: that one reports the client's request.
    if (!t.session.dropped && !d.reported) this.#report(endEvent(t, d, now));
    this.#details.delete(t.id);
    this.#checkDrained(now);
  }

  released(t: Transfer): void {
    if (!this.#s.singlePort && t.phase !== Phase.OPENING) this.#events.push({ type: "close", socket: t.id });
  }

  #all(): Transfer[] {
    return [...this.#byKey.values()].flat();
  }

  #reply(address: string, port: number, code: number, message: string): void {
    this.#batches.push({ socket: 0, address, port, datagrams: [encodeError(code, message)], owner: 0 });
  }

  /**
   * Refuses a request from a port of its own, as a transfer would answer: some
   * clients (atftp) only listen for the server's transfer ID after a request.
   */
  #refuse(address: string, port: number, code: number, message: string): void {
    if (this.#s.singlePort) return this.#reply(address, port, code, message);
    this.#batches.push({ socket: 0, fresh: true, address, port, datagrams: [encodeError(code, message)], owner: 0 });
  }

  /** Drops a request unanswered, and tells the operator (see DropCounter). */
  #drop(req: RequestPacket, address: string, port: number, reason: string, now: number): void {
    this.#reportDrops(this.#drops.add(refusalEvent(req, address, port, { code: ErrorCode.NOT_DEFINED, message: reason }), now));
    this.#heap.schedule(this.#drops);
  }

  #reportDrops(event: TransferEvent | null): void {
    if (event !== null) this.#report(event);
    this.#heap.schedule(this.#drops);
  }

  #checkDrained(now: number): void {
    if (this.#life !== Life.DRAINING || this.#live > 0) return;
    this.#life = life(this.#life, Life.SETTLING);
    this.#drainAlarm.wakeAt = now + this.#s.drainTimeoutMs;
    this.#heap.schedule(this.#drainAlarm);
    this.#events.push({ type: "drained" });
  }

  #drainOver(now: number): void {
    if (this.#life === Life.DRAINING) {
      for (const t of this.#all()) this.#with(t, () => t.act(() => t.session.abort(ErrorCode.NOT_DEFINED, "server shutting down"), now));
      for (const t of this.#all()) if (t.phase === Phase.OPENING) this.#openFailed(t, ErrorCode.NOT_DEFINED, "server shutting down", now);
      this.#checkDrained(now);
    } else if (this.#life === Life.SETTLING) this.#closed(now);
  }

  #closed(_now: number): void {
    this.#life = life(this.#life, Life.CLOSED);
    this.#drainAlarm.wakeAt = Infinity;
    const dropped = this.#drops.flush();
    if (dropped !== null) this.#report(dropped);
    this.#events.push({ type: "closed" });
  }

  #problem(error: unknown, context: string): void {
    this.#events.push({ type: "problem", error, context });
  }

  #report(event: TransferEvent): void {
    if (event.outcome === "failed" && event.error && event.reason === undefined) event.reason = reasonOf(event.error);
    this.#events.push({ type: "report", event });
  }
}
