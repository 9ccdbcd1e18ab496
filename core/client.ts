/**
 * A TFTP client on the same machinery as the server: the request phase is
 * here; once the server answers from its transfer port, a ReceiveSession (get)
 * or a SendSession (put) runs the transfer, driven by a Transfer.
 */
import { allocate } from "./arena.ts";
import { NetasciiSource, type ReadBody, toSource } from "./body.ts";
import { decode, encodeError, encodeRequest, NetasciiDecoder } from "./codec.ts";
import { TftpError } from "./errors.ts";
import { DEFAULT_BLKSIZE } from "./options.ts";
import { ErrorCode, type Options, type Packet } from "./packet.ts";
import { ReceiveSession, ringSlots, SendSession, type SessionSettings } from "./session.ts";
import { Transfer } from "./transfer.ts";
import type { DatagramTransport, Runtime } from "./transport.ts";

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
}

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

/**
 * An IP literal in one spelling (the URL standard's), so that "0:0:0:0:0:0:0:1" and
 * "::1", or "::ffff:127.0.0.1", "::ffff:7f00:1" and "127.0.0.1" (the adapters hand
 * IPv4-mapped peers on as IPv4), compare equal; null for a name.
 */
function canonicalIp(host: string): string | null {
  try {
    const h = new URL(`tftp://${host.includes(":") ? `[${host}]` : host}/`).hostname;
    const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(h);
    if (mapped) return [mapped[1], mapped[2]].map((g) => `${parseInt(g, 16) >> 8}.${parseInt(g, 16) & 255}`).join(".");
    return h.startsWith("[") || /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(h) ? h : null;
  } catch {
    return null;
  }
}

/** An ERROR packet the server sent, as opposed to a failure found on this side (no answer, a bad OACK). */
export class TftpServerError extends TftpError {
  constructor(code: number, message: string) {
    super(code, message);
    this.name = "TftpServerError";
  }
}

/** Calls `onProgress` when the session's delivered bytes have moved since the last call. */
function progressReporter(onProgress: TransferOptions["onProgress"], bytes: () => number, total: number | undefined): () => void {
  let last = -1;
  return () => {
    const n = bytes();
    if (onProgress && n !== last) onProgress((last = n), total);
  };
}

export class TftpClient {
  readonly host: string;
  readonly port: number;
  #options: ClientOptions;
  #canonicalHost: string;

  /** `host` is an IP address: core has no name service, so a name is refused (resolve it with the runtime's DNS first). */
  constructor(host: string, port: number, options: ClientOptions) {
    const canonical = canonicalIp(host);
    if (canonical === null) throw new TypeError(`TftpClient needs an IP address, not "${host}"`);
    this.host = host;
    this.port = port;
    this.#options = options;
    this.#canonicalHost = canonical;
  }

  async #runtime(): Promise<Runtime> {
    const r = this.#options.runtime;
    return typeof r === "function" ? await r() : r;
  }

  /**
   * The transfer's settings from the server's OACK, which may only answer what was
   * asked (RFC 2347): an option not asked for, a blksize or windowsize above the
   * request, or a timeout other than the one requested (RFC 2349) is refused with
   * ERROR 8. An unchecked timeout of "abc" would have made every timer NaN.
   */
  #settings(oack: Options | null, asked: TransferOptions, requested: Options): SessionSettings {
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
    const timeoutMs = oack?.timeout ? Number(oack.timeout) * 1000 : this.#options.timeoutMs ?? 1000;
    const retries = this.#options.retries ?? 5;
    return { blksize, windowsize, timeoutMs, retries, firstRetries: retries, oack: null };
  }

  /**
   * Sends the request until the server answers from its transfer port; then
   * calls `begin` with the transport, the server's port and its first packet.
   */
  async #request<T>(
    request: Uint8Array,
    begin: (t: { runtime: Runtime; transport: DatagramTransport; address: string; port: number; first: Packet; done: (v: T) => void; fail: (e: unknown) => void; route: (r: (d: Uint8Array, a: string, p: number) => void) => void }) => void,
  ): Promise<T> {
    const runtime = await this.#runtime();
    let handler: ((d: Uint8Array, a: string, p: number) => void) | null = null;
    const transport = await runtime.bind(this.host.includes(":") ? "::" : "0.0.0.0", 0, (d, a, p) => handler?.(d, a, p));
    return await new Promise<T>((resolve, reject) => {
      let settled = false;
      let tries = 0;
      const timeoutMs = this.#options.timeoutMs ?? 1000;
      const retries = this.#options.retries ?? 5;
      let timer = runtime.after(timeoutMs, resend);
      function resend() {
        if (++tries > retries) return fail(new TftpError(ErrorCode.NOT_DEFINED, "no answer from the server"));
        transport.send(request, port, host, () => {});
        timer = runtime.after(timeoutMs, resend);
      }
      const { host, port } = this;
      const done = (v: T) => {
        if (settled) return;
        settled = true;
        resolve(v);
      };
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        timer.stop();
        transport.close();
        reject(e);
      };
      handler = (data, address, fromPort) => {
        if (address !== host && canonicalIp(address) !== this.#canonicalHost) return; // a stranger, not the server we asked
        const first = decode(data);
        if (first.op === 0) return; // not an answer
        timer.stop();
        if (first.op === 5) return fail(new TftpServerError(first.code, first.message));
        handler = null;
        try {
          // The address as the server answers from it (its canonical spelling, say), which the transfer then expects.
          begin({ runtime, transport, address, port: fromPort, first, done, fail, route: (r) => (handler = r) });
        } catch (e) {
          if (e instanceof TftpError) transport.send(encodeError(e.code, e.message), fromPort, address, () => {});
          fail(e);
        }
      };
      transport.send(request, port, host, () => {});
    });
  }

  #drive(transfer: Transfer, runtime: Runtime, settings: SessionSettings): void {
    const ticker = runtime.startTicker(Math.max(10, Math.min(100, settings.timeoutMs / 4)), () => {
      transfer.tick(runtime.now());
      if (transfer.session.finished) ticker.stop();
    });
  }

  /** Downloads a file. Rejects with a TftpError when the server sends an ERROR. */
  get(filename: string, options: TransferOptions = {}): Promise<GetResult> {
    const mode = options.mode ?? "octet";
    const requested = requestOptions(options, false);
    const request = encodeRequest(1, filename, mode, requested);
    return this.#request<GetResult>(request, ({ runtime, transport, address, port, first, done, fail, route }) => {
      const oack = first.op === 6 ? first.options : null;
      if (first.op !== 6 && first.op !== 3) throw new TftpError(ErrorCode.ILLEGAL_OPERATION, "unexpected answer");
      const settings = this.#settings(oack, options, requested);
      const chunks: Uint8Array[] = [];
      let received = 0;
      let sinkError: unknown;
      const keep = (chunk: Uint8Array) => {
        received += chunk.length;
        if (!options.onData) return void chunks.push(chunk);
        if (sinkError !== undefined) return;
        try {
          options.onData(chunk);
        } catch (error) {
          sinkError = error;
          queueMicrotask(() => transfer.act(() => session.abort(ErrorCode.DISK_FULL, "cannot store the file")));
        }
      };
      const netascii = mode === "netascii" ? new NetasciiDecoder() : null;
      const session: ReceiveSession = new ReceiveSession(settings, {
        write: (p) => (keep(netascii ? netascii.push(p) : p.slice()), true),
        end: () => {
          if (netascii) keep(netascii.end());
          queueMicrotask(() => {
            transfer.act((now) => session.finish(true, now));
            if (sinkError !== undefined) return fail(new TftpError(ErrorCode.DISK_FULL, "cannot store the file", { cause: sinkError }));
            // The size announced is a promise (boot clients size their buffers by it): a server that
            // broke it sent something other than the file it described.
            if (oack?.tsize !== undefined && mode === "octet" && received !== Number(oack.tsize)) {
              return fail(new TftpError(ErrorCode.NOT_DEFINED, `received ${received} bytes where the server announced tsize ${oack.tsize}`));
            }
            const data = new Uint8Array(options.onData ? 0 : received);
            let at = 0;
            for (const c of chunks) (data.set(c, at), at += c.length);
            done({ data, oack });
          });
        },
      });
      const transfer = new Transfer({
        kind: "read", address, port, filename, session, transport, ownsTransport: true,
        now: () => runtime.now(),
        onFinished: (t) => {
          const f = t.session.failure;
          if (f?.byPeer) fail(new TftpServerError(f.code, f.message));
          else if (f) fail(new TftpError(f.code, f.message, sinkError === undefined ? undefined : { cause: sinkError }));
        },
        onError: () => {},
      });
      const total = oack?.tsize !== undefined ? Number(oack.tsize) : undefined;
      const progress = progressReporter(options.onProgress, () => session.bytes, total);
      route((d, a, p) => (transfer.receive(d, a, p), progress()));
      if (oack) transfer.start(); // ACK 0 answers the OACK
      else transfer.act((now) => session.receive(first, now)); // DATA 1 came straight away: no options
      progress();
      this.#drive(transfer, runtime, settings);
    });
  }

  /** Uploads a body (anything a read handler may return). */
  put(filename: string, body: ReadBody, options: TransferOptions = {}): Promise<void> {
    const mode = options.mode ?? "octet";
    const raw = toSource(body) ?? toSource(new Uint8Array(0))!;
    const source = mode === "netascii" ? new NetasciiSource(raw) : raw;
    const requested = requestOptions(options, true, mode === "octet" ? raw.size : undefined);
    const request = encodeRequest(2, filename, mode, requested);
    return this.#request<void>(request, ({ runtime, transport, address, port, first, done, fail, route }) => {
      const oack = first.op === 6 ? first.options : null;
      if (!(first.op === 6 || (first.op === 4 && first.block === 0))) throw new TftpError(ErrorCode.ILLEGAL_OPERATION, "unexpected answer");
      const settings = this.#settings(oack, options, requested);
      const slots = ringSlots(settings.blksize, settings.windowsize);
      const bytes = slots * (settings.blksize + 4);
      const ring = allocate(bytes);
      if (ring === 0) throw new TftpError(ErrorCode.DISK_FULL, "out of memory");
      const session = new SendSession(settings, ring, slots);
      let sourceError: unknown;
      const transfer = new Transfer({
        kind: "write", address, port, filename, session, transport, ownsTransport: true,
        now: () => runtime.now(), later: (ms, fn) => runtime.after(ms, fn), source, ring: { ptr: ring, bytes },
        onFinished: (t) => {
          const f = t.session.failure;
          if (f?.byPeer) fail(new TftpServerError(f.code, f.message));
          else if (f) fail(new TftpError(f.code, f.message, sourceError === undefined ? undefined : { cause: sourceError }));
          else done();
        },
        // The body's own error (a stream that broke): the caller gets it as the cause.
        onError: (error) => (sourceError ??= error),
      });
      const progress = progressReporter(options.onProgress, () => session.bytes, mode === "octet" ? raw.size : undefined);
      route((d, a, p) => (transfer.receive(d, a, p), progress()));
      transfer.start();
      progress();
      this.#drive(transfer, runtime, settings);
    });
  }
}
