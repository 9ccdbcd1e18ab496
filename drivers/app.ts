/**
 * Emmer, the public face: routes, settings, listen and close.
 * mod.ts gives it the running runtime's adapter; tests give it a fake one.
 */
import type { TransferEvent, TransferStart } from "../core/events.ts";
import { Registry } from "../core/metrics.ts";
import { ServerMetrics } from "../core/server_metrics.ts";
import type { OptionLimits, PolicyContext } from "../core/policy.ts";
import type { RewriteRule } from "../core/remap.ts";
import type { ReadHandler, UploadContext, WriteRoute } from "../core/routes.ts";
import { type Pattern, Router } from "../core/router.ts";
import { type ResolvedSettings, resolveSettings } from "../core/settings.ts";
import type { Runtime } from "../core/transport.ts";
import { ServerDriver } from "./server.ts";

export interface EmmerOptions {
  /** Address to listen on. Default "127.0.0.1" (local only); "0.0.0.0" or "::" for everyone. */
  hostname?: string;
  /** UDP port. Default 3942 (a development port; TFTP's own is 69). 0 picks a free one. */
  port?: number;
  /** Retransmission timeout in seconds when the client asks for none (RFC 2349 timeout); fractions allowed. Default 1. */
  timeout?: number;
  /** Retransmissions of a packet before a transfer is given up; from the second timeout in a row the wait doubles (at most 8 timeouts). Default 5. */
  retries?: number;
  /** Largest blksize granted (RFC 2348; 8..65464). Default 65464. */
  maxBlksize?: number;
  /** Largest windowsize granted (RFC 7440; 1..65535). Default 64. */
  maxWindowsize?: number;
  /** Concurrent transfers (and requests in their handlers); beyond it, requests are dropped unanswered (a boot ROM retries). Default 1000. */
  maxSessions?: number;
  /** New requests per client address per second (bursts of as many allowed); beyond it, dropped unanswered. Default 100. */
  maxRequestsPerSecond?: number;
  /** Seconds a handler (read handler, accept, or write verdict) may take; then ERROR 0. Default 30. */
  handlerTimeout?: number;
  /** Largest upload in bytes (Infinity: no limit); a bigger announced tsize or upload gets ERROR 3. Default 1073741824 (1 GiB). */
  maxUploadSize?: number;
  /** Answer every transfer from the listening port (for NAT and containers) instead of a new port each. Default false. */
  singlePort?: boolean;
  /** How long close() lets live transfers finish before ending them with ERROR 0, in milliseconds. Default 5000. */
  drainTimeout?: number;
  /**
   * Rules applied, in order, to every requested name before routes match (tftpd-hpa's remap
   * rules; parseMapFile reads its file format). Handlers get the result as `filename` and the
   * client's name as `requested`; a refusing rule sends ERROR 2. Default: none.
   */
  rewrite?: RewriteRule[];
  /**
   * Per request, before its handler runs: the option limits for this client and name (caps on
   * blksize and windowsize, options withheld). Returning nothing keeps the server's limits; the
   * server's maxBlksize and maxWindowsize still bound what it returns.
   */
  optionLimits?: (ctx: PolicyContext) => OptionLimits | undefined | void | Promise<OptionLimits | undefined | void>;
  /** Called once per finished transfer and per refused request (the CLI logs a line from it). */
  onTransfer?: (event: TransferEvent) => void;
  /** Called when a transfer starts: its request was accepted and its first packet goes out. */
  onTransferStart?: (event: TransferStart) => void;
  /**
   * Keep metrics (transfers, bytes, refusals by reason, live sessions, latency histograms):
   * true for a registry of their own, or a Registry to add them to (beside the caller's own).
   * `app.metrics.render()` is the Prometheus text; mod.ts adds the process's memory. Default: none.
   */
  metrics?: boolean | Registry;
  /**
   * Ports for transfers, [first, last] (a firewall's opening): each transfer takes a free one
   * of them, and with all taken a request is refused as busy. Default: any free port.
   */
  portRange?: [number, number];
  /**
   * A bound UDP socket to serve, by file descriptor, instead of binding hostname and port
   * (socket activation). Transfers bind on its address. Needs a runtime with `bindFd`.
   */
  fd?: number;
  /** Called with handler exceptions and other internal errors. Default: console.error. */
  onError?: (error: unknown, context: string) => void;
  /** The runtime's sockets and clock, or a loader of them. mod.ts supplies the running runtime's. */
  runtime?: Runtime | (() => Promise<Runtime>);
}

export type WriteHandler = WriteRoute | ((ctx: UploadContext) => unknown | Promise<unknown>);

export class Emmer {
  readonly #reads = new Router<ReadHandler>();
  readonly #writes = new Router<WriteRoute>();
  readonly #options: EmmerOptions;
  readonly #settings: ResolvedSettings;
  #engine: ServerDriver | null = null;
  #metrics: ServerMetrics | null = null;

  constructor(options: EmmerOptions = {}) {
    const o = options;
    this.#settings = resolveSettings(o);
    this.#options = { ...o };
    if (o.metrics) {
      const registry = o.metrics instanceof Registry ? o.metrics : new Registry();
      this.#metrics = new ServerMetrics(registry, () => this.#engine?.load ?? 0, this.#settings.maxSessions);
    }
  }

  /** The metrics registry (see the `metrics` option), or null without it. `render()` gives the Prometheus text. */
  get metrics(): Registry | null {
    return this.#metrics?.registry ?? null;
  }

  /** Serves reads of file names matching `pattern` with what `handler` returns. First match wins. */
  read(pattern: Pattern, handler: ReadHandler): this {
    this.#reads.add(pattern, handler);
    return this;
  }

  /** Accepts uploads of file names matching `pattern`. First match wins; no match is ERROR 2. */
  write(pattern: Pattern, handler: WriteHandler): this {
    this.#writes.add(pattern, typeof handler === "function" ? { handle: handler } : handler);
    return this;
  }

  /** The bound address, once listening. */
  get address(): { address: string; port: number } | null {
    return this.#engine?.address ?? null;
  }

  /** Binds the port; resolves once requests are being served. */
  async listen(): Promise<void> {
    if (this.#engine) throw new Error("already listening");
    const o = this.#options;
    const r = o.runtime;
    if (r === undefined) throw new Error("no runtime: import Emmer from mod.ts, or pass options.runtime");
    const runtime = typeof r === "function" ? await r() : r;
    const engine = new ServerDriver(runtime, this.#reads, this.#writes, {
      ...this.#settings,
      onTransfer: (event) => {
        this.#metrics?.ended(event);
        o.onTransfer?.(event);
      },
      onTransferStart: (event) => {
        this.#metrics?.started(event);
        o.onTransferStart?.(event);
      },
      onError: o.onError ?? ((error, context) => console.error(`emmer: ${context}:`, error)),
    });
    await engine.listen();
    this.#engine = engine;
  }

  /** Stops listening; live transfers get `drainTimeout` to finish. */
  async close(): Promise<void> {
    const engine = this.#engine;
    this.#engine = null;
    await engine?.close();
  }

  /** The running server (its `load`), for tests. */
  get engine(): ServerDriver | null {
    return this.#engine;
  }
}
