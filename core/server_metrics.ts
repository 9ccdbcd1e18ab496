/**
 * The server's metrics, kept from its transfer events (see EmmerOptions.metrics).
 * Labels come from small fixed sets only (kind, outcome, reason): never a file
 * name or a client address, which would make a series per request.
 */
import { Counter, Gauge, Histogram, type Registry } from "./metrics.ts";
import { wasm } from "./codec.ts";
import type { FailureReason, TransferEvent, TransferStart } from "./events.ts";

const KINDS = ["read", "write"] as const;

/** Handler latency: a map lookup is microseconds, a database or an HTTP backend milliseconds to seconds. */
const HANDLER_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Transfer duration: a config file in milliseconds, a kernel or an ISO in seconds to minutes. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export class ServerMetrics {
  readonly registry: Registry;
  readonly #started: Counter;
  readonly #ended: Counter;
  readonly #refused: Counter;
  readonly #bytes: Counter;
  readonly #blocks: Counter;
  readonly #retransmits: Counter;
  readonly #timeouts: Counter;
  readonly #handler: Histogram;
  readonly #duration: Histogram;

  /** `live`: transfers running plus requests in their handlers; `max`: the maxSessions limit. */
  constructor(registry: Registry, live: () => number, max: number) {
    this.registry = registry;
    const r = registry;
    this.#started = r.add(new Counter("emmer_transfers_started_total", "Transfers started (the request accepted, its first packet sent).", ["kind"]));
    this.#ended = r.add(new Counter("emmer_transfers_ended_total", "Transfers ended, by outcome: ok, or why they failed.", ["kind", "outcome"]));
    this.#refused = r.add(new Counter("emmer_requests_refused_total", "Requests refused (an ERROR) or dropped unanswered (busy, rate), by reason.", ["kind", "reason"]));
    this.#bytes = r.add(new Counter("emmer_transfer_bytes_total", "Payload bytes delivered: sent and acknowledged (read), received (write).", ["kind"]));
    this.#blocks = r.add(new Counter("emmer_transfer_blocks_total", "DATA blocks delivered.", ["kind"]));
    this.#retransmits = r.add(new Counter("emmer_retransmits_total", "Packets sent again (a timeout, or a gap the client reported).", ["kind"]));
    this.#timeouts = r.add(new Counter("emmer_transfer_timeouts_total", "Transfers given up because the client stopped answering.", ["kind"]));
    r.add(new Gauge("emmer_sessions", "Transfers running, plus requests whose handler is still deciding.", live));
    r.add(new Gauge("emmer_sessions_max", "The maxSessions limit: beyond it, requests are refused as busy.", () => max));
    r.add(new Gauge("emmer_wasm_memory_bytes", "WebAssembly memory: the packet codec and the block rings of live transfers.", () => wasm.memory.buffer.byteLength));
    this.#handler = r.add(new Histogram("emmer_handler_seconds", "Time a request's handler took to answer (read handler, or write accept).", ["kind"], HANDLER_BUCKETS));
    this.#duration = r.add(new Histogram("emmer_transfer_duration_seconds", "Transfer duration, from the request to the last packet.", ["kind", "outcome"], DURATION_BUCKETS));
    // Series that exist from the start: a rate() over a counter that appears only at its first event misses that event.
    for (const kind of KINDS) {
      for (const c of [this.#started, this.#bytes, this.#blocks, this.#retransmits, this.#timeouts]) c.inc({ kind }, 0);
      this.#ended.inc({ kind, outcome: "ok" }, 0);
    }
  }

  started(e: TransferStart): void {
    this.#started.inc({ kind: e.kind });
    if (e.handlerMs !== undefined) this.#handler.observe(e.handlerMs / 1000, { kind: e.kind });
  }

  /** A transfer's end, or a refused request's event. */
  ended(e: TransferEvent): void {
    const kind = e.kind;
    if (e.refused) {
      this.#refused.inc({ kind, reason: e.reason ?? "other" }, e.dropped ?? 1);
      if (e.handlerMs !== undefined) this.#handler.observe(e.handlerMs / 1000, { kind });
      return;
    }
    const outcome: "ok" | FailureReason = e.outcome === "ok" ? "ok" : e.reason ?? "other";
    this.#ended.inc({ kind, outcome });
    this.#bytes.inc({ kind }, e.bytes);
    this.#blocks.inc({ kind }, e.blocks);
    this.#retransmits.inc({ kind }, e.retransmits);
    if (outcome === "timeout") this.#timeouts.inc({ kind });
    this.#duration.observe(e.durationMs / 1000, { kind, outcome: e.outcome });
  }
}
