/**
 * TftpClient: runs a ClientExchange (core/exchange.ts) on a socket of its own
 * and one timer, feeds a put's fills from its body, and hands a get's data to
 * the caller. Like the server's driver, it decides nothing.
 */
import { NetasciiSource, type ReadBody, toSource } from "../core/body.ts";
import { encodeRequest, NetasciiDecoder } from "../core/codec.ts";
import { TftpError } from "../core/errors.ts";
import { canonicalIp, ClientExchange, TftpServerError } from "../core/exchange.ts";
import { ErrorCode, Opcode, type Options } from "../core/packet.ts";
import type { BlockSource, FillTarget } from "../core/body.ts";
import type { DatagramTransport, Runtime } from "../core/transport.ts";

export { TftpServerError };

export interface ClientOptions {
  /** Sockets and clock; mod.ts's TftpClient supplies the running runtime's. */
  runtime: Runtime | (() => Promise<Runtime>);
  /** Retransmission timeout in milliseconds. Default 1000. */
  timeoutMs?: number;
  /** Retransmissions before giving up. Default 5. */
  retries?: number;
}

export interface TransferOptions {
  mode?: "octet" | "netascii";
  blksize?: number;
  windowsize?: number;
  /** Ask for (get) or announce (put) the size. */
  tsize?: boolean;
  /** Seconds, sent as the timeout option. */
  timeout?: number;
  /**
   * Called as the transfer moves: payload bytes received in order (get) or acknowledged
   * (put) so far, and the total when known (the server's tsize on a get, the body's size on a put).
   */
  onProgress?: (bytes: number, total?: number) => void;
  /**
   * Get only: receives the file's bytes in order as they arrive (netascii already decoded),
   * instead of the result's `data` (then empty), so that a large file needs no memory of its
   * size. A throw ends the transfer with ERROR 3 to the server; the call rejects with it as the cause.
   */
  onData?: (chunk: Uint8Array) => void;
  /**
   * Get only: the most bytes the file may have (as sent: in netascii, before decoding). Default:
   * 1 GiB when they are collected into `data` (a server that never ends a file must not fill the
   * memory), no limit with `onData`. A larger tsize in the OACK is answered with ERROR 3 in place
   * of ACK 0; a block that would pass it, with ERROR 3 in place of its ACK, and it is not handed
   * on. Either way the call rejects with that error.
   */
  maxSize?: number;
}

/** What a get collects into memory at most, unless told otherwise. */
export const DEFAULT_MAX_GET = 1024 * 1024 * 1024;

export interface GetResult {
  data: Uint8Array;
  /** The server's OACK, or null when it sent none. */
  oack: Options | null;
}

/** `size`: for a put, the size to announce; a put of unknown size announces none. */
function requestOptions(o: TransferOptions, put: boolean, size?: number): Options {
  const opts: Options = {};
  if (o.blksize !== undefined) opts.blksize = String(o.blksize);
  if (o.timeout !== undefined) opts.timeout = String(o.timeout);
  if (o.tsize && !(put && size === undefined)) opts.tsize = String(size ?? 0);
  if (o.windowsize !== undefined) opts.windowsize = String(o.windowsize);
  return opts;
}

export class TftpClient {
  readonly host: string;
  readonly port: number;
  #options: ClientOptions;

  /** `host` is an IP address: core has no name service, so a name is refused (resolve it with the runtime's DNS first). */
  constructor(host: string, port: number, options: ClientOptions) {
    if (canonicalIp(host) === null) throw new TypeError(`TftpClient needs an IP address, not "${host}"`);
    this.host = host;
    this.port = port;
    this.#options = options;
  }

  async #runtime(): Promise<Runtime> {
    const r = this.#options.runtime;
    return typeof r === "function" ? await r() : r;
  }

  /** Downloads a file. Rejects with a TftpError when the server sends an ERROR. */
  async get(filename: string, options: TransferOptions = {}): Promise<GetResult> {
    const mode = options.mode ?? "octet";
    const maxSize = options.maxSize ?? (options.onData ? Infinity : DEFAULT_MAX_GET);
    if (typeof maxSize !== "number" || !(maxSize >= 0) || (maxSize !== Infinity && !Number.isSafeInteger(maxSize))) {
      const given = typeof options.maxSize === "string" ? JSON.stringify(options.maxSize) : String(options.maxSize);
      throw new TypeError(`maxSize must be a whole number of bytes, not ${given}`);
    }
    const requested = requestOptions(options, false);
    const netascii = mode === "netascii" ? new NetasciiDecoder() : null;
    const chunks: Uint8Array[] = [];
    let received = 0;
    const exchange = this.#exchange("get", filename, encodeRequest(Opcode.RRQ, filename, mode, requested), requested, options, {
      decode: netascii ? (p: Uint8Array) => netascii.push(p) : undefined,
      flush: netascii ? () => netascii.end() : undefined,
      maxSize,
    });
    const oack = await this.#run(exchange, null, options, (chunk) => {
      received += chunk.length;
      if (options.onData) options.onData(chunk);
      else chunks.push(chunk);
    }, () => (exchange.oack?.tsize !== undefined ? Number(exchange.oack.tsize) : undefined));
    const data = new Uint8Array(options.onData ? 0 : received);
    let at = 0;
    for (const c of chunks) (data.set(c, at), at += c.length);
    return { data, oack };
  }

  /** Uploads a body (anything a read handler may return). */
  async put(filename: string, body: ReadBody, options: TransferOptions = {}): Promise<void> {
    const mode = options.mode ?? "octet";
    const raw = toSource(body) ?? toSource(new Uint8Array(0))!;
    const size = mode === "octet" ? raw.size : undefined;
    const requested = requestOptions(options, true, size);
    let source: BlockSource | null = null;
    try {
      source = mode === "netascii" ? new NetasciiSource(raw) : raw;
      const exchange = this.#exchange("put", filename, encodeRequest(Opcode.WRQ, filename, mode, requested), requested, options, { capturesViews: source.capturesViews });
      await this.#run(exchange, source, options, () => {}, () => size);
    } finally {
      // Whatever the outcome (refused, no answer, done), the body's resources go back.
      await Promise.resolve((source ?? raw).close()).catch(() => {});
    }
  }

  #exchange(kind: "get" | "put", filename: string, request: Uint8Array, requested: Options, options: TransferOptions, extra: object): ClientExchange {
    return new ClientExchange({
      kind,
      host: this.host,
      port: this.port,
      filename,
      request,
      requested,
      asked: { blksize: options.blksize, windowsize: options.windowsize },
      timeoutMs: this.#options.timeoutMs ?? 1000,
      retries: this.#options.retries ?? 5,
      ...extra,
    });
  }

  /** Runs the exchange to its outcome; the socket stays until the transfer is over (a get's dally). */
  async #run(
    ex: ClientExchange,
    source: BlockSource | null,
    options: TransferOptions,
    deliver: (chunk: Uint8Array) => void,
    total: () => number | undefined,
  ): Promise<Options | null> {
    const rt = await this.#runtime();
    let run: Run | null = null;
    const socket = await rt.bind(this.host.includes(":") ? "::" : "0.0.0.0", 0, (d, a, p) => {
      ex.receive(d, a, p, rt.now());
      run?.step();
    });
    return await new Promise<Options | null>((resolve, reject) => {
      run = new Run(rt, socket, ex, source, { onProgress: options.onProgress, deliver, total, resolve, reject });
      ex.start(rt.now());
      run.step();
    });
  }
}

interface RunHooks {
  onProgress?: (bytes: number, total?: number) => void;
  deliver: (chunk: Uint8Array) => void;
  total: () => number | undefined;
  resolve: (oack: Options | null) => void;
  reject: (error: unknown) => void;
}

/** One exchange on its socket: carries out what it wants after each input, and keeps one timer. */
class Run {
  #timer: { stop(): void } | null = null;
  #timerAt = Infinity;
  #settled = false;
  #closed = false;
  #lastBytes = -1;
  #busy = false;
  #again = false;

  constructor(
    readonly rt: Runtime,
    readonly socket: DatagramTransport,
    readonly ex: ClientExchange,
    readonly source: BlockSource | null,
    readonly hooks: RunHooks,
  ) {}

  step(): void {
    // A send reported done at once calls back in here: it runs once more after, not inside.
    if (this.#busy) return void (this.#again = true);
    this.#busy = true;
    do {
      this.#again = false;
      this.#once();
    } while (this.#again);
    this.#busy = false;
  }

  #once(): void {
    const { ex, hooks } = this;
    const now = this.rt.now();
    for (const chunk of ex.takeData()) {
      try {
        hooks.deliver(chunk);
      } catch (error) {
        ex.abort(ErrorCode.DISK_FULL, "cannot store the file", error, now);
        break;
      }
    }
    ex.delivered(now);
    for (const b of ex.takeDatagrams()) {
      const n = b.datagrams.length;
      let left = n;
      const sent = b.owned ? () => --left === 0 && (ex.sent(n, this.rt.now()), this.step()) : () => {};
      for (const d of b.datagrams) this.socket.send(d, b.port, b.address, sent);
    }
    const target = ex.takeFill();
    if (target !== null) this.#fill(target);
    if (hooks.onProgress && ex.transfer !== null && ex.bytes !== this.#lastBytes) hooks.onProgress((this.#lastBytes = ex.bytes), hooks.total());
    if (!this.#settled && ex.outcome !== null) {
      this.#settled = true;
      if (ex.outcome.ok) hooks.resolve(ex.outcome.oack);
      else hooks.reject(ex.outcome.error);
    }
    if (ex.socketFree && !this.#closed) {
      this.#closed = true;
      this.#timer?.stop();
      this.socket.close();
    }
    if (!this.#closed) this.#arm(now);
  }

  #arm(now: number): void {
    const at = this.ex.wakeAt;
    if (at >= this.#timerAt || at === Infinity) return;
    this.#timer?.stop();
    this.#timerAt = at;
    this.#timer = this.rt.after(Math.max(0, at - now), () => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.ex.handleTimer(this.rt.now());
      this.step();
    });
  }

  #fill(target: FillTarget): void {
    const { ex, rt } = this;
    let r: number | Promise<number>;
    try {
      r = this.source!.fill(target);
    } catch (error) {
      return ex.fillFailed(error, rt.now()), this.step();
    }
    if (typeof r === "number") return ex.filled(r, rt.now()), this.step();
    r.then((n) => ex.filled(n, rt.now()), (error) => ex.fillFailed(error, rt.now())).then(() => this.step());
  }
}

export { TftpError };
