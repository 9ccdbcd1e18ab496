/**
 * Runs a ServerEndpoint (core/endpoint.ts) on a runtime: owns the sockets, the
 * one timer (armed at the endpoint's next deadline), the handler promises, the
 * block sources and the send accounting. It decides nothing: every datagram,
 * handler answer, fill and send completion goes to the endpoint as a command
 * with the time, and whatever the endpoint then wants sent or done is carried out.
 *
 * Nothing thrown by a handler reaches the runtime: a TftpError becomes that
 * ERROR, anything else ERROR 0 with a generic message, and is reported to onError.
 */
import { type BlockSource, NetasciiSource, toSource } from "../core/body.ts";
import { type Batch, type EndpointEvent, type RequestInfo, ServerEndpoint } from "../core/endpoint.ts";
import { TftpError } from "../core/errors.ts";
import type { TransferEvent, TransferStart } from "../core/events.ts";
import { ErrorCode } from "../core/packet.ts";
import type { OptionLimits } from "../core/policy.ts";
import type { ResolvedSettings } from "../core/settings.ts";
import type { ReadHandler, RequestContext, WriteContext, WriteRoute } from "../core/routes.ts";
import type { Router } from "../core/router.ts";
import type { DatagramTransport, MessageHandler, Runtime } from "../core/transport.ts";
import { PortPool } from "./ports.ts";

/** The options, checked (core/settings.ts), and the callbacks. */
export interface DriverSettings extends ResolvedSettings {
  onTransfer?: (event: TransferEvent) => void;
  onTransferStart?: (event: TransferStart) => void;
  onError: (error: unknown, context: string) => void;
}

const noop = () => {};

export class ServerDriver {
  #rt: Runtime;
  #reads: Router<ReadHandler>;
  #writes: Router<WriteRoute>;
  #s: DriverSettings;
  #ep: ServerEndpoint;
  #main: DatagramTransport | null = null;
  #ports: PortPool;
  /** Transfer sockets by transfer id. */
  #sockets = new Map<number, DatagramTransport>();
  /** Read sources by transfer id, with the request (what an error about them names). */
  #sources = new Map<number, { source: BlockSource; info: RequestInfo }>();
  /** Write handlers still running (see close()). */
  #handlers = new Set<Promise<void>>();
  #timer: { stop(): void } | null = null;
  #timerAt = Infinity;
  #flushing = false;
  #again = false;
  #mainSending = 0;
  #mainDrained: (() => void)[] = [];
  #closed: (() => void) | null = null;

  constructor(runtime: Runtime, reads: Router<ReadHandler>, writes: Router<WriteRoute>, settings: DriverSettings) {
    this.#rt = runtime;
    this.#reads = reads;
    this.#writes = writes;
    this.#s = settings;
    this.#ep = new ServerEndpoint(settings);
    this.#ports = new PortPool(runtime, settings.portRange);
  }

  get address(): { address: string; port: number } | null {
    return this.#main ? { address: this.#main.address, port: this.#main.port } : null;
  }

  /** Live transfers plus requests whose handler is still running. */
  get load(): number {
    return this.#ep.load;
  }

  async listen(): Promise<void> {
    if (this.#main) throw new Error("already listening");
    const onMain: MessageHandler = (d, a, p) => {
      this.#ep.receive(0, d, a, p, this.#rt.now());
      this.#flush();
    };
    const fd = this.#s.fd;
    if (fd !== undefined && this.#rt.bindFd === undefined) throw new Error("this runtime cannot listen on a socket by file descriptor");
    this.#main = fd === undefined ? await this.#rt.bind(this.#s.hostname, this.#s.port, onMain) : await this.#rt.bindFd!(fd, onMain);
  }

  /** See ServerEndpoint.close: drains transfers, then write handlers, each within drainTimeout. */
  async close(): Promise<void> {
    const main = this.#main;
    if (main === null) return;
    const closed = new Promise<void>((resolve) => (this.#closed = resolve));
    this.#ep.close(this.#rt.now());
    this.#flush();
    await closed;
    this.#timer?.stop();
    this.#timer = null;
    this.#timerAt = Infinity;
    // Sends on the listening socket are counted, so that the last ones (ERRORs) get out first.
    if (this.#mainSending > 0) await new Promise<void>((resolve) => this.#mainDrained.push(resolve));
    this.#main = null;
    main.close();
  }

  /** Carries out what the endpoint wants, until it wants nothing more; then arms the timer. */
  #flush(): void {
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = true;
    try {
      // Events (a fill, a socket opened) may bring datagrams, and sends done may bring events.
      for (;;) {
        this.#again = false;
        const batches = this.#ep.takeBatches();
        for (const b of batches) this.#send(b);
        const events = this.#ep.takeEvents();
        for (const e of events) this.#handle(e);
        if (batches.length === 0 && events.length === 0 && !this.#again) break;
      }
    } finally {
      this.#flushing = false;
    }
    this.#arm();
  }

  /** One timer, at the endpoint's next deadline; one armed earlier stays (its wake-up re-arms). */
  #arm(): void {
    const at = this.#ep.nextTimer;
    if (at >= this.#timerAt || at === Infinity) return;
    this.#timer?.stop();
    this.#timerAt = at;
    this.#timer = this.#rt.after(Math.max(0, at - this.#rt.now()), () => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#ep.handleTimer(this.#rt.now());
      this.#flush();
    });
  }

  #send(b: Batch): void {
    if (b.fresh) return this.#sendFresh(b);
    const n = b.datagrams.length;
    let done = noop;
    if (b.owner !== 0) {
      let left = n;
      done = () => {
        if (--left > 0) return;
        this.#ep.sent(b.owner, n, this.#rt.now());
        this.#flush();
      };
    }
    let transport: DatagramTransport | undefined;
    if (b.socket === 0) {
      transport = this.#main ?? undefined;
      if (transport) done = this.#countMain(done, n);
    } else transport = this.#sockets.get(b.socket);
    if (transport === undefined) {
      for (let i = 0; i < n; i++) done();
      return;
    }
    if (n > 1 && transport.sendMany) transport.sendMany(b.datagrams, b.port, b.address, done);
    else for (const d of b.datagrams) transport.send(d, b.port, b.address, done);
  }

  #countMain(done: () => void, n: number): () => void {
    this.#mainSending += n;
    return () => {
      this.#mainSending--;
      done();
      if (this.#mainSending === 0) for (const resolve of this.#mainDrained.splice(0)) resolve();
    };
  }

  /** A refusal from a port of its own (see ServerEndpoint.#refuse); from the listening port when none can be had. */
  #sendFresh(b: Batch): void {
    this.#ports.bind(this.#host(), () => {}, 4).then(
      (t) => {
        let left = b.datagrams.length;
        for (const d of b.datagrams) t.send(d, b.port, b.address, () => --left === 0 && t.close());
      },
      () => {
        this.#send({ ...b, fresh: undefined });
        this.#flush();
      },
    );
  }

  /** Transfers bind on the listening address (a passed socket's, with fd). */
  #host(): string {
    return this.#s.fd !== undefined && this.#main ? this.#main.address : this.#s.hostname;
  }

  #handle(e: EndpointEvent): void {
    switch (e.type) {
      case "request":
        return void this.#route(e.id, e.request).catch((error) => this.#s.onError(error, "request"));
      case "open":
        return this.#open(e.transfer, e.maxDatagram, e.label);
      case "close": {
        const t = this.#sockets.get(e.socket);
        this.#sockets.delete(e.socket);
        try {
          t?.close();
        } catch { /* already closed */ }
        return;
      }
      case "fill":
        return this.#fill(e.transfer, e.target);
      case "ended":
        return this.#closeSource(e.transfer);
      case "started":
        return this.#call("onTransferStart", () => this.#s.onTransferStart?.(e.event));
      case "report":
        return this.#call("onTransfer", () => this.#s.onTransfer?.(e.event));
      case "problem":
        return this.#s.onError(e.error, e.context);
      case "drained":
        if (this.#handlers.size === 0) return this.#ep.settled(this.#rt.now());
        void Promise.allSettled([...this.#handlers]).then(() => {
          this.#ep.settled(this.#rt.now());
          this.#flush();
        });
        return;
      case "closed":
        return this.#closed?.();
    }
  }

  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#s.onError(error, name);
    }
  }

  #open(transfer: number, maxDatagram: number, label: string): void {
    const onMessage: MessageHandler = (d, a, p) => {
      this.#ep.receive(transfer, d, a, p, this.#rt.now());
      this.#flush();
    };
    this.#ports.bind(this.#host(), onMessage, maxDatagram).then(
      (socket) => {
        this.#sockets.set(transfer, socket);
        this.#ep.opened(transfer, this.#rt.now());
        this.#flush();
      },
      (error) => {
        this.#s.onError(error, `binding a port for ${label}`);
        this.#ep.openFailed(transfer, this.#rt.now());
        this.#flush();
      },
    );
  }

  // ---- handlers ----

  /** Runs the request's route: the optionLimits hook, then the handler; each answer goes to the endpoint. */
  async #route(id: number, info: RequestInfo): Promise<void> {
    const now = () => this.#rt.now();
    try {
      if (info.kind === "read") await this.#read(id, info, now);
      else await this.#write(id, info, now);
    } catch (error) {
      // Too late (the handler timed out and the client was told): nothing to report.
      if (!this.#ep.isPending(id)) return;
      if (error instanceof TftpError) this.#ep.refuse(id, error.code, error.message, now());
      else {
        this.#s.onError(error, `${info.kind} handler for ${info.requested}`);
        this.#ep.refuse(id, ErrorCode.NOT_DEFINED, "internal server error", now());
      }
    }
    this.#flush();
  }

  async #limits(info: RequestInfo): Promise<OptionLimits | undefined | void> {
    const hook = this.#s.optionLimits;
    if (hook === undefined) return undefined;
    return await hook({ ...info });
  }

  async #read(id: number, info: RequestInfo, now: () => number): Promise<void> {
    const match = this.#reads.match(info.filename);
    if (match === null) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    if (this.#ep.limits(id, await this.#limits(info), now()) === null) return;
    const ctx: RequestContext = { ...this.#context(info), params: match.params };
    const body = await match.handler(ctx);
    let source = toSource(body);
    if (source === null) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    if (info.mode === "netascii") source = new NetasciiSource(source);
    const transfer = this.#ep.acceptRead(id, { size: source.size, capturesViews: source.capturesViews }, now());
    // Refused (no memory), or too late: the client was told; close what the handler opened.
    if (transfer === null) return this.#close(source, info.filename);
    this.#sources.set(transfer, { source, info });
  }

  async #write(id: number, info: RequestInfo, now: () => number): Promise<void> {
    const match = this.#writes.match(info.filename);
    if (match === null) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "writing this file is not allowed");
    const route = match.handler;
    const accept = route.accept;
    const plan = this.#ep.limits(id, await this.#limits(info), now(), accept !== undefined);
    if (plan === null) return;
    this.#flush();
    const ctx: WriteContext = { ...this.#context(info), params: match.params, size: plan.size };
    if (accept && (await accept(ctx)) === false) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "upload refused");
    const accepted = this.#ep.acceptWrite(id, now());
    if (accepted === null) return;
    const { transfer, upload } = accepted;
    this.#flush();
    upload.onDrain(() => {
      this.#ep.resume(transfer, now());
      this.#flush();
    });
    // The handler runs alongside the transfer; its verdict decides the last ACK.
    const handling = Promise.resolve()
      .then(() => route.handle({ ...ctx, body: upload.stream, signal: upload.signal }))
      .then(
        (result) => this.#ep.verdict(transfer, result === false ? { ok: false, code: ErrorCode.ACCESS_VIOLATION, message: "upload refused" } : { ok: true }, now()),
        (error) => {
          if (error instanceof TftpError) return this.#ep.verdict(transfer, { ok: false, code: error.code, message: error.message }, now());
          if (!this.#ep.isFinished(transfer)) this.#s.onError(error, `write handler for ${info.requested}`);
          this.#ep.verdict(transfer, { ok: false, code: ErrorCode.NOT_DEFINED, message: "internal server error" }, now());
        },
      )
      .then(() => this.#flush());
    // close() waits for it (bounded): the handler may still be cleaning up after a failed upload.
    this.#handlers.add(handling);
    const settled = () => void this.#handlers.delete(handling);
    handling.then(settled, (error) => (settled(), this.#s.onError(error, `write verdict for ${info.requested}`)));
  }

  #context(info: RequestInfo): Omit<RequestContext, "params"> {
    const { address, port, filename, requested, mode, options } = info;
    return { address, port, filename, requested, mode, options };
  }

  // ---- sources ----

  #fill(transfer: number, target: Parameters<BlockSource["fill"]>[0]): void {
    const s = this.#sources.get(transfer);
    if (s === undefined) return this.#ep.fillFailed(transfer, this.#rt.now());
    let result: number | Promise<number>;
    try {
      result = s.source.fill(target);
    } catch (error) {
      return this.#fillFailed(transfer, s.info, error);
    }
    if (typeof result === "number") return this.#ep.filled(transfer, result, this.#rt.now());
    result.then(
      (n) => this.#ep.filled(transfer, n, this.#rt.now()),
      (error) => this.#fillFailed(transfer, s.info, error),
    ).then(() => this.#flush());
  }

  #fillFailed(transfer: number, info: RequestInfo, error: unknown): void {
    // The label is made here, not kept per transfer: stalled clients would hold thousands.
    if (!this.#ep.isFinished(transfer)) this.#s.onError(error, `reading ${info.filename} for ${info.address}:${info.port}`);
    this.#ep.fillFailed(transfer, this.#rt.now());
  }

  #closeSource(transfer: number): void {
    const s = this.#sources.get(transfer);
    if (s === undefined) return;
    this.#sources.delete(transfer);
    this.#close(s.source, s.info.filename);
  }

  #close(source: BlockSource, filename: string): void {
    try {
      Promise.resolve(source.close()).catch((e) => this.#s.onError(e, `closing ${filename}`));
    } catch (e) {
      this.#s.onError(e, `closing ${filename}`);
    }
  }
}
