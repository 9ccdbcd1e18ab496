/**
 * Per-request option policy: what a quirky client or a narrow link may be
 * offered. The server's own limits (maxBlksize, maxWindowsize) still bound
 * everything; a policy can only lower them or withhold an option. Pure: the
 * CLI builds its rules here from flags, the server driver asks the hook per request.
 */
import { parseAddress, parseRange, type Range, inRange } from "./cidr.ts";
import { MAX_BLKSIZE, MAX_WINDOWSIZE, MIN_BLKSIZE } from "./options.ts";
import type { Mode, Options } from "./packet.ts";

/** What one request may be granted. Every field is optional; absent means the server's default. */
export interface OptionLimits {
  /** Cap on blksize (8..65464), below the server's maxBlksize. */
  maxBlksize?: number;
  /** Cap on windowsize (1..65535), below the server's maxWindowsize. */
  maxWindowsize?: number;
  /**
   * false: the option is never acknowledged, as if the client had not asked (tftpd-hpa's
   * --refuse): blksize false means 512-byte blocks, windowsize false lock-step, tsize false
   * no size, timeout false the server's own timeout.
   */
  blksize?: boolean;
  windowsize?: boolean;
  tsize?: boolean;
  timeout?: boolean;
  /**
   * The block number after 65535 in this client's downloads (0 by default): 1 for a ROM
   * that takes block 0 for a repeat. A client that asks with the rollover option gets what it asks.
   */
  rollover?: 0 | 1;
}

/** What the optionLimits hook sees: the request, before any handler runs. */
export interface PolicyContext {
  kind: "read" | "write";
  address: string;
  port: number;
  /** The name after rewriting (see `rewrite`), the one routes match. */
  filename: string;
  /** The name as the client sent it. */
  requested: string;
  mode: Mode;
  options: Options;
}

const FLAGS = ["blksize", "windowsize", "tsize", "timeout"] as const;

/** Throws a RangeError naming the first bad field: a hook's mistake should say what it was. */
export function checkLimits(l: OptionLimits, what = "optionLimits"): OptionLimits {
  if (typeof l !== "object" || l === null) throw new TypeError(`${what} must return an object or nothing, not ${String(l)}`);
  const int = (name: string, v: unknown, min: number, max: number) => {
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= min && (v as number) <= max)) {
      throw new RangeError(`${what}: ${name} must be an integer from ${min} to ${max}, not ${String(v)}`);
    }
  };
  int("maxBlksize", l.maxBlksize, MIN_BLKSIZE, MAX_BLKSIZE);
  int("maxWindowsize", l.maxWindowsize, 1, MAX_WINDOWSIZE);
  for (const f of FLAGS) {
    if (l[f] !== undefined && typeof l[f] !== "boolean") throw new TypeError(`${what}: ${f} must be true or false, not ${String(l[f])}`);
  }
  if (l.rollover !== undefined && l.rollover !== 0 && l.rollover !== 1) throw new RangeError(`${what}: rollover must be 0 or 1, not ${String(l.rollover)}`);
  return l;
}

/** Both at once: the lower caps, and an option withheld if either withholds it. */
export function combineLimits(a: OptionLimits, b: OptionLimits): OptionLimits {
  const min = (x?: number, y?: number) => (x === undefined ? y : y === undefined ? x : Math.min(x, y));
  const out: OptionLimits = {};
  const mb = min(a.maxBlksize, b.maxBlksize);
  if (mb !== undefined) out.maxBlksize = mb;
  const mw = min(a.maxWindowsize, b.maxWindowsize);
  if (mw !== undefined) out.maxWindowsize = mw;
  for (const f of FLAGS) if (a[f] === false || b[f] === false) out[f] = false;
  const rollover = a.rollover ?? b.rollover;
  if (rollover !== undefined) out.rollover = rollover;
  return out;
}

/**
 * The largest blksize whose DATA packet fits one datagram of `mtu` bytes on the
 * client's path: IPv4 takes 20 bytes of IP header, IPv6 40 (no extension headers),
 * UDP 8 and the DATA header 4. 1500 gives 1468 over IPv4 and 1448 over IPv6.
 */
export function blksizeForMtu(mtu: number, address: string): number {
  const family = parseAddress(address)?.family ?? 6;
  return Math.max(MIN_BLKSIZE, Math.min(MAX_BLKSIZE, mtu - (family === 4 ? 20 : 40) - 8 - 4));
}

/** A client range and what requests from it may be granted (the CLI's --client). */
export interface ClientRule {
  range: Range;
  limits: OptionLimits;
  /** The path MTU to that range: blksize is capped to fit (see blksizeForMtu). */
  mtu?: number;
}

/**
 * Parses `RANGE:key=value,...`, e.g. `10.0.0.0/8:blksize=1024,windowsize=no,tsize=no`
 * or `2001:db8::/32:mtu=1280`. The range ends at the last `:` before the first `=`.
 * Keys: blksize=N|no, windowsize=N|no, tsize=no|yes, timeout=no|yes, mtu=N (68..65535), rollover=0|1.
 */
export function parseClientRule(text: string): ClientRule {
  const eq = text.indexOf("=");
  const colon = eq < 0 ? -1 : text.lastIndexOf(":", eq);
  if (colon <= 0) throw new RangeError(`"${text}": expected RANGE:key=value,... such as 10.0.0.0/8:blksize=1024,tsize=no`);
  const range = parseRange(text.slice(0, colon));
  const rule: ClientRule = { range, limits: {} };
  for (const item of text.slice(colon + 1).split(",")) {
    const [key, value, extra] = item.split("=");
    const bad = (want: string) => new RangeError(`"${text}": ${key} takes ${want}, not "${value ?? ""}"`);
    if (extra !== undefined || value === undefined) throw new RangeError(`"${text}": "${item}" is not key=value`);
    const n = /^[0-9]{1,6}$/.test(value) ? Number(value) : NaN;
    const yesNo = value === "yes" ? true : value === "no" ? false : undefined;
    if (key === "blksize" || key === "windowsize") {
      if (yesNo === false) rule.limits[key] = false;
      else if (key === "blksize" && n >= MIN_BLKSIZE && n <= MAX_BLKSIZE) rule.limits.maxBlksize = n;
      else if (key === "windowsize" && n >= 1 && n <= MAX_WINDOWSIZE) rule.limits.maxWindowsize = n;
      else throw bad(key === "blksize" ? `8..65464 or no` : `1..65535 or no`);
    } else if (key === "tsize" || key === "timeout") {
      if (yesNo === undefined) throw bad("yes or no");
      if (!yesNo) rule.limits[key] = false;
    } else if (key === "rollover") {
      if (value !== "0" && value !== "1") throw bad("0 or 1");
      rule.limits.rollover = value === "1" ? 1 : 0;
    } else if (key === "mtu") {
      // 68: the smallest MTU IPv4 allows (RFC 791); anything less leaves no room for a block.
      if (!(n >= 68 && n <= 65535)) throw bad("68..65535");
      rule.mtu = n;
    } else throw new RangeError(`"${text}": unknown key "${key}" (blksize, windowsize, tsize, timeout, mtu, rollover)`);
  }
  return rule;
}

/**
 * The limits for a client under a list of rules and a global MTU: the first rule
 * whose range holds the address applies (order them most specific first), and
 * the MTU, the rule's or the global one, caps blksize.
 */
export function limitsFor(address: string, rules: readonly ClientRule[], mtu?: number): OptionLimits {
  const rule = rules.find((r) => inRange(r.range, address));
  let limits: OptionLimits = rule ? { ...rule.limits } : {};
  for (const m of [mtu, rule?.mtu]) {
    if (m !== undefined) limits = combineLimits(limits, { maxBlksize: blksizeForMtu(m, address) });
  }
  return limits;
}
