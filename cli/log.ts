/**
 * emmer-node's log lines, one per transfer and per refused request: text for
 * people (the default), or JSON for log shippers (--log-format json).
 */
import type { TransferEvent } from "../mod.ts";

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** 127.0.0.1:69, [::1]:69. */
function client(e: TransferEvent): string {
  return e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function formatText(e: TransferEvent, verbose: boolean, now = new Date()): string {
  const outcome = e.outcome === "ok"
    ? "ok"
    : e.dropped !== undefined
    ? `dropped unanswered (${e.error?.message}): ${e.dropped} request(s) since the last such line`
    : `failed: ${e.error?.byPeer ? "client sent" : "sent"} ERROR ${e.error?.code} ${e.error?.message}`;
  const name = JSON.stringify(e.filename) + (e.requested !== undefined ? ` (requested ${JSON.stringify(e.requested)})` : "");
  let line = `${now.toISOString()} ${client(e)} ${e.kind} ${name} ${size(e.bytes)} ${(e.durationMs / 1000).toFixed(3)} s ${outcome}`;
  if (verbose) {
    const rate = e.durationMs > 0 ? `${(e.bytes / 1024 ** 2 / (e.durationMs / 1000)).toFixed(1)} MiB/s` : "-";
    line += ` | ${rate} blksize=${e.blksize} windowsize=${e.windowsize} minBurst=${e.minBurst} retransmits=${e.retransmits} oack=${JSON.stringify(e.options)}`;
  }
  return line;
}

/**
 * One JSON object, keys always present and in this order (null when they do not apply), so
 * that a shipper's schema does not depend on the outcome. `duration` is in seconds.
 */
export function formatJson(e: TransferEvent, now = new Date()): string {
  return JSON.stringify({
    time: now.toISOString(),
    event: e.refused ? "refusal" : "transfer",
    client: client(e),
    kind: e.kind,
    file: e.filename,
    requested: e.requested ?? null,
    mode: e.mode,
    asked: e.asked,
    granted: e.options,
    blksize: e.blksize,
    windowsize: e.windowsize,
    bytes: e.bytes,
    blocks: e.blocks,
    retransmits: e.retransmits,
    duration: Math.round(e.durationMs * 1000) / 1e6, // seconds, to the microsecond
    outcome: e.outcome,
    reason: e.reason ?? null,
    error: e.error ? { code: e.error.code, message: e.error.message, by: e.error.byPeer ? "client" : "server" } : null,
    dropped: e.dropped ?? null,
  });
}
