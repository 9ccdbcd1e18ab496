/**
 * What the server tells its operator: one event when a transfer starts, one when it ends
 * or a request is refused or dropped, with a small fixed set of failure reasons.
 */
import { ErrorCode, Opcode, type Mode, type Options, type RequestPacket } from "./packet.ts";
import type { RequestInfo } from "./routes.ts";
import { SendSession, State } from "./session.ts";
import type { Transfer } from "./transfer.ts";

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
export function refusalEvent(req: RequestPacket, address: string, port: number, error: { code: number; message: string }): TransferEvent {
  return {
    kind: req.op === Opcode.RRQ ? "read" : "write",
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

/** The ERROR 0 messages the server sends, by what they mean. */
const CODE0_REASONS: Record<string, FailureReason> = {
  "timed out": "timeout",
  "server shutting down": "shutting_down",
  "internal server error": "handler_error",
  "handler timed out": "handler_timeout",
  "too many requests": "rate",
};

export function reasonOf(error: { code: number; message: string; byPeer: boolean }): FailureReason {
  if (error.byPeer) return "client_error";
  switch (error.code) {
    case ErrorCode.FILE_NOT_FOUND:
      return "not_found";
    case ErrorCode.ACCESS_VIOLATION:
      return "access";
    case ErrorCode.DISK_FULL:
      return "disk_full";
    case ErrorCode.ILLEGAL_OPERATION:
    case ErrorCode.OPTION_REFUSED:
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

/** What the endpoint keeps about a transfer for its events. */
export interface TransferDetails {
  /** The options granted (the OACK), or null; the block and window sizes are the session's. */
  granted: Options | null;
  /** The request, as routes saw it (its mode and options are the client's). */
  info: RequestInfo;
  handlerMs?: number;
  /** The first transfer for its request (a sibling answers the same request again: one start, one end). */
  first: boolean;
  /** Its event went out at its last ACK (an upload stored). */
  reported?: true;
}

/** The event's name: the rewritten one, with the client's as `requested` when they differ. */
export function named<E extends { filename: string; requested?: string }>(event: E, info: RequestInfo): E {
  event.filename = info.filename;
  if (info.filename !== info.requested) event.requested = info.requested;
  return event;
}

const handlerTime = (d: { handlerMs?: number }) => (d.handlerMs === undefined ? {} : { handlerMs: d.handlerMs });

/** What a transfer's start and end events both say. */
function about(t: Transfer, d: TransferDetails): Omit<TransferStart, "granted"> {
  return named<Omit<TransferStart, "granted">>({
    kind: t.kind,
    address: t.address,
    port: t.port,
    filename: d.info.filename,
    mode: d.info.mode,
    asked: d.info.options,
    blksize: t.session.settings.blksize,
    windowsize: t.session.settings.windowsize,
    ...handlerTime(d),
  }, d.info);
}

export function startEvent(t: Transfer, d: TransferDetails): TransferStart {
  return { ...about(t, d), granted: d.granted };
}

export function endEvent(t: Transfer, d: TransferDetails, now: number): TransferEvent {
  const s = t.session;
  const event: TransferEvent = {
    ...about(t, d),
    bytes: s.bytes,
    blocks: s instanceof SendSession ? s.acked : s.expected - 1,
    durationMs: now - t.startedAt,
    retransmits: s.retransmits,
    minBurst: s instanceof SendSession ? s.minBurst : s.settings.windowsize,
    options: d.granted,
    outcome: s.state === State.DONE || s.state === State.DALLYING ? "ok" : "failed",
  };
  if (s.failure) event.error = { ...s.failure };
  return event;
}

/** The event of a request refused before any transfer ran (or of a transfer that never got its socket). */
export function refusedEvent(info: RequestInfo, error: { code: number; message: string }, handlerMs?: number): TransferEvent {
  const req = { op: info.kind === "read" ? Opcode.RRQ : Opcode.WRQ, filename: info.requested, mode: info.mode, options: info.options } as const;
  return named({ ...refusalEvent(req, info.address, info.port, error), ...handlerTime({ handlerMs }) }, info);
}
