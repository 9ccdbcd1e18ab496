/**
 * The server's options in one table: what each takes, its default, its unit and range,
 * and a line of help. resolveSettings checks a caller's options against it and fills in
 * the defaults; the command line (serve.ts) takes its defaults, ranges and --help from it
 * too, and tests/settings.test.ts holds the README and EmmerOptions' comments to it.
 */
import { MAX_BLKSIZE, MAX_WINDOWSIZE, MIN_BLKSIZE } from "./options.ts";
import type { OptionLimits, PolicyContext } from "./policy.ts";
import { checkRules, type RewriteRule } from "./remap.ts";

/** A number with a default: a count, a size or a time. */
export interface NumberSetting {
  readonly type: "integer" | "number";
  readonly default: number;
  /** Seconds, milliseconds or bytes; absent for a count. */
  readonly unit?: "s" | "ms" | "bytes";
  readonly min: number;
  readonly max: number;
  /** Infinity is also taken, for no limit at all. */
  readonly unlimited?: true;
  readonly help: string;
  /**
   * Where `emmer-node` takes the option differently on purpose: narrower (never wider) than
   * the table's range, and why. Its default is always the table's.
   */
  readonly cli?: { readonly integer?: true; readonly min?: number; readonly why: string };
}

export interface BooleanSetting {
  readonly type: "boolean";
  readonly default: boolean;
  readonly help: string;
}

export interface StringSetting {
  readonly type: "string";
  readonly default: string;
  readonly help: string;
}

/** An option that is off unless given: `otherwise` says what happens then. */
export interface OptionalSetting {
  readonly type: "integer" | "function" | "port range" | "rules";
  readonly otherwise: string;
  readonly min?: number;
  readonly max?: number;
  readonly help: string;
}

export type Setting = NumberSetting | BooleanSetting | StringSetting | OptionalSetting;

export interface SettingsTable {
  readonly hostname: StringSetting;
  readonly port: NumberSetting;
  readonly timeout: NumberSetting;
  readonly retries: NumberSetting;
  readonly maxBlksize: NumberSetting;
  readonly maxWindowsize: NumberSetting;
  readonly maxSessions: NumberSetting;
  readonly maxRequestsPerSecond: NumberSetting;
  readonly handlerTimeout: NumberSetting;
  readonly maxUploadSize: NumberSetting;
  readonly singlePort: BooleanSetting;
  readonly drainTimeout: NumberSetting;
  readonly portRange: OptionalSetting;
  readonly fd: OptionalSetting;
  readonly rewrite: OptionalSetting;
  readonly optionLimits: OptionalSetting;
  readonly onTransfer: OptionalSetting;
  readonly onTransferStart: OptionalSetting;
  readonly onError: OptionalSetting;
}

export type SettingName = keyof SettingsTable;

/**
 * The longest wait a timer takes: setTimeout on Node, Deno and Bun fires after 1 ms for
 * anything above 2^31 - 1 ms, so a longer handlerTimeout would end every handler at once.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const SETTINGS: SettingsTable = {
  hostname: {
    type: "string",
    default: "127.0.0.1",
    help: 'address to listen on (local only by default); "0.0.0.0" or "::" for every interface',
  },
  port: { type: "integer", default: 3942, min: 0, max: 65535, help: "UDP port (a development port; TFTP's own is 69); 0 picks a free one" },
  timeout: {
    type: "number",
    default: 1,
    unit: "s",
    min: 0.01,
    max: 255,
    help: "retransmission timeout when the client asks for none (RFC 2349); fractions allowed",
    cli: { integer: true, min: 1, why: "whole seconds, as the RFC 2349 option a client may send (1..255)" },
  },
  retries: { type: "integer", default: 5, min: 0, max: 100, help: "retransmissions of a packet before a transfer is given up" },
  maxBlksize: { type: "integer", default: MAX_BLKSIZE, unit: "bytes", min: MIN_BLKSIZE, max: MAX_BLKSIZE, help: "largest blksize granted (RFC 2348)" },
  maxWindowsize: { type: "integer", default: 64, min: 1, max: MAX_WINDOWSIZE, help: "largest windowsize granted (RFC 7440)" },
  maxSessions: {
    type: "integer",
    default: 1000,
    min: 1,
    max: 1_000_000,
    help: "live transfers (and requests in their handlers); beyond it, requests are dropped unanswered",
  },
  maxRequestsPerSecond: {
    type: "integer",
    default: 100,
    min: 1,
    max: 1_000_000,
    help: "new requests per client address per second; beyond it, dropped unanswered",
  },
  handlerTimeout: {
    type: "number",
    default: 30,
    unit: "s",
    min: 0.001,
    max: Math.floor(MAX_TIMER_MS / 1000),
    help: "how long a handler (read handler, accept, or a write's verdict) may take; then ERROR 0",
  },
  maxUploadSize: {
    type: "integer",
    default: 1024 ** 3,
    unit: "bytes",
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    // Infinity is JavaScript's own "no bound", and every comparison with it does the right thing;
    // NaN would compare false with everything, which would be no cap by accident.
    unlimited: true,
    help: "largest upload; a larger announced tsize or upload gets ERROR 3",
  },
  singlePort: { type: "boolean", default: false, help: "answer every transfer from the listening port (NAT, containers)" },
  drainTimeout: {
    type: "number",
    default: 5000,
    unit: "ms",
    min: 0,
    max: MAX_TIMER_MS,
    help: "how long close() lets live transfers finish before ending them with ERROR 0",
  },
  portRange: { type: "port range", otherwise: "any free port", min: 1, max: 65535, help: "[first, last]: the ports transfers are answered from" },
  fd: { type: "integer", otherwise: "none", min: 0, max: 2 ** 31 - 1, help: "a bound UDP socket to serve, by file descriptor, instead of hostname and port" },
  rewrite: { type: "rules", otherwise: "none", help: "rules applied, in order, to every requested name before routes match" },
  optionLimits: { type: "function", otherwise: "none", help: "per request: lower caps on blksize and windowsize, options withheld" },
  onTransfer: { type: "function", otherwise: "none", help: "called once per finished transfer and per refused request" },
  onTransferStart: { type: "function", otherwise: "none", help: "called when a request is accepted and its transfer starts" },
  onError: { type: "function", otherwise: "console.error", help: "called with handler exceptions and other internal errors" },
};

/** What the engine runs with: every option checked, defaults filled in, times in milliseconds. */
export interface ResolvedSettings {
  hostname: string;
  port: number;
  timeoutMs: number;
  retries: number;
  maxBlksize: number;
  maxWindowsize: number;
  maxSessions: number;
  maxRequestsPerSecond: number;
  handlerTimeoutMs: number;
  maxUploadSize: number;
  singlePort: boolean;
  drainTimeoutMs: number;
  rewrite?: readonly RewriteRule[];
  optionLimits?: (ctx: PolicyContext) => OptionLimits | undefined | void | Promise<OptionLimits | undefined | void>;
  portRange?: [number, number];
  fd?: number;
}

/** The options as a caller passes them: anything, since JavaScript callers pass what they like. */
export type SettingsInput = { readonly [K in SettingName]?: unknown };

/** A value as an error message shows it: strings quoted, so that "5" is told from 5. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  if (typeof value === "object" && value !== null) return "an object";
  return String(value);
}

const UNITS = { s: " of seconds", ms: " of milliseconds", bytes: " of bytes" } as const;

/** What a number setting takes, as its error says it: "an integer from 0 to 65535". */
export function describeRange(name: SettingName): string {
  const s = SETTINGS[name] as NumberSetting;
  const what = s.type === "integer" ? (s.unit ? "an integer number" : "an integer") : "a number";
  return `${what}${s.unit ? UNITS[s.unit] : ""} from ${s.min} to ${s.max}${s.unlimited ? ", or Infinity for no limit" : ""}`;
}

function checkNumber(name: SettingName, value: unknown, s: { type: string; min?: number; max?: number; unlimited?: true }): number {
  const n = value as number;
  const ok = typeof value === "number" &&
    ((s.unlimited && n === Infinity) || ((s.type !== "integer" || Number.isInteger(n)) && n >= s.min! && n <= s.max!));
  if (ok) return n;
  const message = `${name} must be ${describeRange(name)}, not ${show(value)}`;
  throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
}

/** The option as given, or undefined when it was not (null counts as not given, as `??` had it). */
function given(options: SettingsInput, name: SettingName): unknown {
  return options[name] ?? undefined;
}

function num(options: SettingsInput, name: SettingName): number {
  const value = given(options, name);
  const s = SETTINGS[name] as NumberSetting;
  return value === undefined ? s.default : checkNumber(name, value, s);
}

function fn<F>(options: SettingsInput, name: SettingName): F | undefined {
  const value = given(options, name);
  if (value !== undefined && typeof value !== "function") throw new TypeError(`${name} must be a function, not ${show(value)}`);
  return value as F | undefined;
}

function portRange(value: unknown): [number, number] | undefined {
  if (value === undefined) return undefined;
  const { min, max } = SETTINGS.portRange;
  if (!Array.isArray(value) || value.length !== 2) {
    throw new TypeError(`portRange must be [first, last] with ${min} <= first <= last <= ${max}, not ${show(value)}`);
  }
  const [a, b] = value as unknown[];
  const check = (at: string, v: unknown, from: number) => {
    if (!(typeof v === "number" && Number.isInteger(v) && v >= from && v <= max!)) {
      const message = `portRange[${at}] must be an integer from ${from} to ${max}, not ${show(v)}`;
      throw typeof v === "number" ? new RangeError(message) : new TypeError(message);
    }
    return v;
  };
  return [check("0", a, min!), check("1", b, a as number)];
}

/**
 * Checks every option in the table and fills in the defaults. Throws a TypeError (wrong
 * type) or a RangeError (out of range, NaN) naming the option, what it takes and the value.
 * The callbacks are only checked: the caller wires them.
 */
export function resolveSettings(options: SettingsInput = {}): ResolvedSettings {
  const hostname = given(options, "hostname") ?? SETTINGS.hostname.default;
  if (typeof hostname !== "string" || hostname === "") {
    const message = `hostname must be an address such as "127.0.0.1", "0.0.0.0" or "::", not ${show(hostname)}`;
    throw hostname === "" ? new RangeError(message) : new TypeError(message);
  }
  const singlePort = given(options, "singlePort") ?? SETTINGS.singlePort.default;
  if (typeof singlePort !== "boolean") throw new TypeError(`singlePort must be true or false, not ${show(singlePort)}`);
  const rules = given(options, "rewrite");
  if (rules !== undefined && !Array.isArray(rules)) throw new TypeError(`rewrite must be an array of rules, not ${show(rules)}`);
  const fd = given(options, "fd");
  for (const name of ["onTransfer", "onTransferStart", "onError"] as const) fn(options, name);
  return {
    hostname,
    port: num(options, "port"),
    timeoutMs: num(options, "timeout") * 1000,
    retries: num(options, "retries"),
    maxBlksize: num(options, "maxBlksize"),
    maxWindowsize: num(options, "maxWindowsize"),
    maxSessions: num(options, "maxSessions"),
    maxRequestsPerSecond: num(options, "maxRequestsPerSecond"),
    handlerTimeoutMs: num(options, "handlerTimeout") * 1000,
    maxUploadSize: num(options, "maxUploadSize"),
    singlePort,
    drainTimeoutMs: num(options, "drainTimeout"),
    rewrite: rules === undefined ? undefined : checkRules(rules as RewriteRule[]),
    optionLimits: fn<ResolvedSettings["optionLimits"]>(options, "optionLimits"),
    portRange: portRange(given(options, "portRange")),
    fd: fd === undefined ? undefined : checkNumber("fd", fd, SETTINGS.fd),
  };
}
