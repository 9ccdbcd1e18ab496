/**
 * Option negotiation (RFC 2347, 2348, 2349, 7440): which of the client's
 * options the server accepts, and with which values. Values out of range are
 * ignored, as RFC 2347 asks; an OACK lists only what was accepted, and no OACK
 * is sent when nothing was.
 */
import type { Mode, Options } from "./packet.ts";

export const DEFAULT_BLKSIZE = 512;
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
export const MAX_WINDOWSIZE = 65535;

export interface NegotiationLimits {
  /** Largest blksize granted (a larger request is answered with this). */
  maxBlksize: number;
  /** Largest windowsize granted. */
  maxWindowsize: number;
  /** Retransmission timeout when the client asks for none, in milliseconds. */
  timeoutMs: number;
  /** false: the option is not acknowledged, as if the client had not asked (a per-request policy). */
  blksize?: boolean;
  windowsize?: boolean;
  tsize?: boolean;
  timeout?: boolean;
  /** The block number after 65535 in a read, unless the client asks with the rollover option (0 if neither). */
  rollover?: 0 | 1;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  /** RRQ: the block number after 65535 (see SessionSettings.rollover). */
  rollover: 0 | 1;
  /** WRQ: the size the client announced (tsize), if any. */
  announcedSize?: number;
  /** The OACK's options, or null when no OACK is to be sent. */
  reply: Options | null;
}

/** A decimal integer with no sign, no spaces and no exponent; NaN otherwise. */
function integer(value: string | undefined): number {
  if (value === undefined || !/^[0-9]{1,15}$/.test(value)) return NaN;
  return Number(value);
}

/**
 * @param kind     "read" for RRQ, "write" for WRQ
 * @param size     RRQ: the body's size when the handler knows it (tsize is answered only then)
 */
export function negotiate(
  kind: "read" | "write",
  mode: Mode,
  requested: Options,
  limits: NegotiationLimits,
  size?: number,
): Negotiated {
  const reply: Options = {};
  const result: Negotiated = { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeoutMs: limits.timeoutMs, rollover: limits.rollover ?? 0, reply: null };

  const blksize = limits.blksize === false ? NaN : integer(requested.blksize);
  if (blksize >= MIN_BLKSIZE) {
    result.blksize = Math.min(blksize, MAX_BLKSIZE, limits.maxBlksize);
    reply.blksize = String(result.blksize);
  }
  const timeout = limits.timeout === false ? NaN : integer(requested.timeout);
  if (timeout >= 1 && timeout <= 255) {
    result.timeoutMs = timeout * 1000;
    reply.timeout = requested.timeout;
  }
  const tsize = limits.tsize === false ? NaN : integer(requested.tsize);
  if (!Number.isNaN(tsize)) {
    if (kind === "write") {
      result.announcedSize = tsize;
      reply.tsize = String(tsize);
    } else if (size !== undefined && mode === "octet") {
      // netascii changes the length on the wire; an honest size is unknown, so none is sent
      reply.tsize = String(size);
    }
  }
  const windowsize = limits.windowsize === false ? NaN : integer(requested.windowsize);
  if (windowsize >= 1 && windowsize <= MAX_WINDOWSIZE) {
    result.windowsize = Math.min(windowsize, limits.maxWindowsize);
    reply.windowsize = String(result.windowsize);
  }
  // Not an RFC option: tftpd-hpa's, for a read, "rollover=0" or "1" (the block after 65535),
  // answered as asked. An upload's blocks are the client's to number: not acknowledged there.
  const rollover = requested.rollover;
  if (kind === "read" && (rollover === "0" || rollover === "1")) {
    result.rollover = rollover === "1" ? 1 : 0;
    reply.rollover = rollover;
  }
  result.reply = Object.keys(reply).length > 0 ? reply : null;
  return result;
}
