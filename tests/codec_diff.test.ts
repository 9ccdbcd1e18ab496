/**
 * Differential test: the WASM codec (core/codec.ts) against the plain-TypeScript reference
 * (tests/support/reference_codec.ts) over seeded random and mutated packets.
 *
 * Reproduce a failure with the printed seed and index:
 *   EMMER_FUZZ_SEED=<seed> npx tsx tests/codec_diff.test.ts
 * and `packetAt(seed, index)` from tests/support/random_packets.ts rebuilds the packet.
 * EMMER_FUZZ_COUNT overrides the number of decoded packets (default 100000).
 */
import { concat as join } from "./support/session_driver.ts";
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as core from "../core/codec.ts";
import { MAX_CONTROL_PACKET, MAX_OPTIONS, ParseFailure, parseError, type Mode } from "../core/packet.ts";
import * as ref from "./support/reference_codec.ts";
import {
  chance,
  int,
  oversizeControl,
  oversizeData,
  packetAt,
  pick,
  randomBytes,
  randomCase,
  randomOptionName,
  randomText,
  rng,
  subSeed,
  type Rng,
} from "./support/random_packets.ts";

const SEED = Number(process.env.EMMER_FUZZ_SEED ?? 0x5eed_e33e) >>> 0;
const COUNT = Number(process.env.EMMER_FUZZ_COUNT ?? 100_000);
const ENCODE_COUNT = 3000;
const NETASCII_COUNT = 2000;
const MAX_REPORTED = 8;

const utf8 = new TextDecoder("utf-8", { ignoreBOM: true }); // as the codec decodes: a leading BOM is kept
const utf8enc = new TextEncoder();

// ---------------------------------------------------------------------------- helpers

function hex(b: Uint8Array, max = 512): string {
  const shown = Array.from(b.subarray(0, max), (x) => x.toString(16).padStart(2, "0")).join("");
  return b.length > max ? `${shown}… (${b.length} bytes, first ${max} shown)` : `${shown} (${b.length} bytes)`;
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `<bytes ${hex(x, 48)}>` : x));
}

/**
 * A structural difference between a and b, or null. Plain objects must have the same own keys
 * in the same order and Object.prototype as prototype; Uint8Arrays are compared by content.
 */
function diff(a: unknown, b: unknown, path = "$"): string | null {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array)) return `${path}: one side is not a Uint8Array`;
    if (a.length !== b.length) return `${path}: length ${a.length} vs ${b.length}`;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `${path}[${i}]: ${a[i]} vs ${b[i]}`;
    return null;
  }
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) ? null : `${path}: ${show(a)} vs ${show(b)}`;
  }
  const pa = Object.getPrototypeOf(a), pb = Object.getPrototypeOf(b);
  if (pa !== pb) return `${path}: prototype differs (${pa === null ? "null" : pa?.constructor?.name} vs ${pb === null ? "null" : pb?.constructor?.name})`;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.join("\u0000") !== kb.join("\u0000")) return `${path}: keys ${show(ka)} vs ${show(kb)}`;
  for (const k of ka) {
    const d = diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    if (d) return d;
  }
  return null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return diff(a, b) === null;
}

function call<T>(f: () => T): T | { thrown: string } {
  try {
    return f();
  } catch (e) {
    return { thrown: String(e) };
  }
}

/** Copy p into a larger buffer with noise around it and return the view (exercises byteOffset). */
function embed(r: Rng, p: Uint8Array): Uint8Array {
  const before = int(r, 1, 16), after = int(r, 0, 16);
  const buf = randomBytes(r, before + p.length + after);
  if (chance(r, 0.5)) buf.fill(0, before + p.length); // NULs right after the packet
  buf.set(p, before);
  return buf.subarray(before, before + p.length);
}

function fail(what: string, failures: string[], total: number): void {
  if (failures.length === 0) return;
  assert.unreachable(`${what}: ${total} mismatch(es) (seed ${SEED}); first ${failures.length}:\n${failures.join("\n")}`);
}

// ---------------------------------------------------------------------------- decode

test("decode: WASM codec matches the reference on random and mutated packets", () => {
  const failures: string[] = [];
  let mismatches = 0;
  const seen = new Map<string, number>();
  for (let i = 0; i < COUNT; i++) {
    let p = packetAt(SEED, i);
    if (i % 4 === 3) p = embed(rng(subSeed(SEED ^ 0xa5a5, i)), p);
    const got = call(() => core.decode(p));
    const want = ref.decode(p);
    const kind = want.op === 0 ? `err${(want as { reason: number }).reason}` : `op${want.op}`;
    seen.set(kind, (seen.get(kind) ?? 0) + 1);
    const d = diff(got, want);
    if (d !== null) {
      mismatches++;
      if (failures.length < MAX_REPORTED) {
        failures.push(
          `  index ${i}${i % 4 === 3 ? " (as a subarray view)" : ""}: ${d}\n` +
            `    packet ${hex(p)}\n    core ${show(got).slice(0, 600)}\n    ref  ${show(want).slice(0, 600)}`,
        );
      }
    }
  }
  fail("decode", failures, mismatches);
  // The generator must reach every result kind, or the comparison proves little.
  for (const k of ["op1", "op2", "op3", "op4", "op5", "op6"]) assert.ok((seen.get(k) ?? 0) > 100, `few ${k}: ${seen.get(k)}`);
  for (const reason of Object.values(ParseFailure)) {
    assert.ok((seen.get(`err${reason}`) ?? 0) > 20, `few parse errors ${reason}: ${seen.get(`err${reason}`)}`);
  }
});

test("decode: edge cases at the size bounds", () => {
  const cases: Uint8Array[] = [
    new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 3), Uint8Array.of(0, 3, 0), Uint8Array.of(0, 3, 0, 1),
    Uint8Array.of(0, 4, 0), Uint8Array.of(0, 5, 0), Uint8Array.of(0, 5, 0, 1), Uint8Array.of(0, 6),
    Uint8Array.of(0, 6, 0), Uint8Array.of(0, 6, 0x61), Uint8Array.of(0, 6, 0x61, 0), Uint8Array.of(0, 6, 0x61, 0, 0),
    Uint8Array.of(0, 1, 0), Uint8Array.of(0, 1, 0x61, 0), Uint8Array.of(0, 1, 0x61, 0, 0),
    Uint8Array.of(0, 7, 0, 0), Uint8Array.of(0, 0, 0, 0), Uint8Array.of(1, 1, 0, 0),
  ];
  const r = rng(SEED ^ 0x1234);
  for (let i = 0; i < 200; i++) cases.push(oversizeControl(r), oversizeData(r));
  for (const n of [4095, 4096, 4097]) {
    for (const op of [4, 5, 6]) {
      const p = new Uint8Array(n);
      p[1] = op;
      cases.push(p);
    }
  }
  for (const n of [65467, 65468, 65469]) {
    const p = new Uint8Array(n);
    p[1] = 3;
    cases.push(p);
  }
  for (const p of cases) {
    const got = call(() => core.decode(p)), want = ref.decode(p);
    const d = diff(got, want);
    assert.ok(d === null, `packet ${hex(p, 64)}: ${d}\n core ${show(got).slice(0, 300)}\n ref  ${show(want).slice(0, 300)}`);
  }
});

test("decode: option names that collide with Object.prototype members", () => {
  const enc = (s: string) => utf8enc.encode(s);
  for (const names of [["__proto__"], ["constructor"], ["__PROTO__", "blksize"], ["constructor", "CONSTRUCTOR"], ["tostring", "valueof"]]) {
    const parts: number[] = [0, 6];
    names.forEach((n, i) => parts.push(...enc(n), 0, ...enc(String(i + 1)), 0));
    const p = Uint8Array.from(parts);
    const got = call(() => core.decode(p)), want = ref.decode(p);
    const d = diff(got, want);
    assert.ok(d === null, `${show(names)}: ${d}\n core ${show(got)}\n ref  ${show(want)}`);
  }
});

test("decode: a DATA payload is a view of the datagram, not a copy", () => {
  const r = rng(SEED ^ 0x77);
  for (let i = 0; i < 50; i++) {
    const p = embed(r, Uint8Array.from([0, 3, 0, 1, ...randomBytes(r, int(r, 0, 1500))]));
    const got = core.decode(p);
    assert.is(got.op, 3);
    const payload = (got as { payload: Uint8Array }).payload;
    assert.ok(payload.buffer === p.buffer, "payload is not a view of the input buffer");
    assert.is(payload.byteOffset, p.byteOffset + 4);
    assert.is(payload.length, p.length - 4);
  }
});

// ---------------------------------------------------------------------------- encode

function randomOptions(r: Rng, max: number): Record<string, string> {
  const o: Record<string, string> = {};
  const n = int(r, 0, max);
  for (let i = 0; i < n; i++) {
    const name = chance(r, 0.8) ? randomOptionName(r) : randomText(r, 12, false);
    if (name === "__proto__") continue; // assigning it would set the prototype, not a key
    o[name] = chance(r, 0.5) ? String(int(r, 0, 70000)) : randomText(r, 16);
  }
  return o;
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** What decode must return for an OACK/request option list made by the encoders. */
function expectedOptions(o: Record<string, string>): Record<string, string> | number {
  const out: Record<string, string> = {};
  let count = 0;
  for (const [k, v] of Object.entries(o)) {
    if (k === "") break; // an empty name stops option parsing
    if (++count > MAX_OPTIONS) return ParseFailure.TOO_MANY_OPTIONS;
    const name = utf8.decode(utf8enc.encode(asciiLower(k)));
    if (!Object.prototype.hasOwnProperty.call(out, name)) {
      Object.defineProperty(out, name, { value: utf8.decode(utf8enc.encode(v)), writable: true, enumerable: true, configurable: true });
    }
  }
  return out;
}

// deno-lint-ignore no-explicit-any -- encoders of every signature, called with the arguments `make` generated
type Args = any[];

function checkEncoder(
  name: string,
  count: number,
  make: (r: Rng) => unknown[],
  encCore: (...a: Args) => Uint8Array,
  encRef: (...a: Args) => Uint8Array,
  expected: (args: Args, bytes: Uint8Array) => unknown,
): void {
  const failures: string[] = [];
  let mismatches = 0;
  for (let i = 0; i < count; i++) {
    const args = make(rng(subSeed(SEED ^ 0xe4c0de, i)));
    const want = encRef(...args);
    const got = call(() => encCore(...args));
    let problem: string | null = null;
    if (!(got instanceof Uint8Array)) problem = `core returned ${show(got)}`;
    else if (!bytesEqual(got, want)) problem = `bytes differ\n    core ${hex(got, 200)}\n    ref  ${hex(want, 200)}`;
    else {
      const exp = expected(args, want);
      const dRef = diff(ref.decode(want), exp);
      const back = call(() => core.decode(got.slice()));
      const dCore = diff(back, exp);
      if (dRef) problem = `reference round trip: ${dRef}`;
      else if (dCore) problem = `core round trip: ${dCore}\n    core ${show(back).slice(0, 400)}`;
    }
    if (problem) {
      mismatches++;
      if (failures.length < MAX_REPORTED) failures.push(`  index ${i}, ${name}(${show(args).slice(0, 160)}): ${problem}`);
    }
  }
  fail(name, failures, mismatches);
}

test("encodeAck / encodeData: byte-equal and round trip", () => {
  checkEncoder(
    "encodeAck", ENCODE_COUNT,
    (r) => [chance(r, 0.8) ? int(r, 0, 65535) : pick(r, [65536, 65537, 131071, 70000, 1 << 20])],
    core.encodeAck, ref.encodeAck,
    ([block]) => ({ op: 4, block: block & 0xffff }),
  );
  checkEncoder(
    "encodeData", 1000,
    (r) => {
      const n = chance(r, 0.97) ? int(r, 0, 1500) : pick(r, [65464, int(r, 1500, 65464)]);
      const payload = randomBytes(r, n + 8).subarray(int(r, 0, 8)).subarray(0, n); // a view with an offset
      return [int(r, 0, 65535), payload];
    },
    core.encodeData, ref.encodeData,
    ([block, payload]) => ({ op: 3, block, payload }),
  );
});

test("encodeError: byte-equal, NULs removed, truncated to 512 bytes, round trip", () => {
  checkEncoder(
    "encodeError", ENCODE_COUNT,
    (r) => {
      let msg = randomText(r, chance(r, 0.3) ? 700 : 60);
      if (chance(r, 0.2)) {
        const cps = Array.from(msg); // insert at a code point boundary, not inside a surrogate pair
        const at = int(r, 0, cps.length);
        msg = cps.slice(0, at).join("") + "\0".repeat(int(r, 1, 3)) + cps.slice(at).join("");
      }
      return [chance(r, 0.8) ? int(r, 0, 8) : int(r, 0, 65535), msg];
    },
    core.encodeError, ref.encodeError,
    ([code, message]) => {
      const b = utf8enc.encode(message.split("\0").join("")).subarray(0, 507);
      return { op: 5, code, message: utf8.decode(b) };
    },
  );
  // Every output fits in 512 bytes.
  const r = rng(SEED);
  for (let i = 0; i < 100; i++) assert.ok(core.encodeError(0, randomText(r, 2000)).length <= 512);
});

test("encodeOack / encodeRequest: byte-equal and round trip", () => {
  checkEncoder(
    "encodeOack", ENCODE_COUNT,
    (r) => [randomOptions(r, chance(r, 0.9) ? 8 : 40)],
    core.encodeOack, ref.encodeOack,
    ([options], bytes) => {
      if (bytes.length > MAX_CONTROL_PACKET) return parseError(ParseFailure.TOO_LONG);
      const o = expectedOptions(options);
      return typeof o === "number" ? parseError(o) : { op: 6, options: o };
    },
  );
  checkEncoder(
    "encodeRequest", ENCODE_COUNT,
    (r) => {
      const mode = chance(r, 0.9) ? randomCase(r, pick(r, ["netascii", "octet", "mail"])) : pick(r, ["", "binary", "octets", "ſ"]);
      return [int(r, 1, 2) as 1 | 2, randomText(r, 80, false), mode as Mode, randomOptions(r, chance(r, 0.9) ? 8 : 40)];
    },
    core.encodeRequest, ref.encodeRequest,
    ([op, filename, mode, options], bytes) => {
      if (bytes.length > MAX_CONTROL_PACKET) return parseError(ParseFailure.TOO_LONG);
      const lower = asciiLower(mode);
      if (!["netascii", "octet", "mail"].includes(lower)) return parseError(ParseFailure.BAD_MODE);
      const o = expectedOptions(options);
      return typeof o === "number" ? parseError(o) : { op, filename: utf8.decode(utf8enc.encode(filename)), mode: lower, options: o };
    },
  );
});

// ---------------------------------------------------------------------------- netascii

/** Random bytes biased toward CR, LF and NUL (and runs of CR). */
function netasciiBytes(r: Rng): Uint8Array {
  const n = chance(r, 0.9) ? int(r, 0, 300) : int(r, 300, 3000);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = r();
    out[i] = k < 0.3 ? 0x0d : k < 0.5 ? 0x0a : k < 0.65 ? 0 : int(r, 0, 255);
  }
  if (n > 0 && chance(r, 0.25)) out[n - 1] = 0x0d; // trailing CR
  return out;
}

/** Split at random points, with empty chunks now and then. */
function chunks(r: Rng, data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  const small = chance(r, 0.3);
  while (at < data.length) {
    const n = chance(r, 0.05) ? 0 : small ? int(r, 1, 3) : int(r, 1, 200);
    out.push(data.subarray(at, Math.min(data.length, at + n)));
    at += n;
  }
  if (chance(r, 0.2)) out.push(new Uint8Array(0));
  return out;
}


function streamDecode(r: Rng, wire: Uint8Array): Uint8Array {
  const dec = new core.NetasciiDecoder();
  const out: Uint8Array[] = [];
  for (const c of chunks(r, wire)) out.push(dec.push(c).slice());
  out.push(dec.end().slice());
  return join(out);
}

function streamEncode(r: Rng, file: Uint8Array): Uint8Array {
  const enc = new core.NetasciiEncoder();
  const out: Uint8Array[] = [];
  const dstSize = () => (chance(r, 0.3) ? int(r, 1, 3) : int(r, 1, 600));
  let budget = 4 * file.length + 1000;
  for (const c of chunks(r, file)) {
    let at = 0;
    do {
      const dst = new Uint8Array(dstSize()).fill(0xee);
      const { read, written } = enc.encodeInto(c.subarray(at), dst);
      if (read < 0 || written < 0 || written > dst.length || at + read > c.length) {
        throw new Error(`encodeInto returned read=${read} written=${written} for src ${c.length - at}, dst ${dst.length}`);
      }
      if (read === 0 && written === 0 && at < c.length) throw new Error(`encodeInto made no progress (dst ${dst.length})`);
      out.push(dst.slice(0, written));
      at += read;
      if (--budget < 0) throw new Error("encodeInto did not finish");
    } while (at < c.length);
  }
  for (;;) {
    const dst = new Uint8Array(dstSize());
    const { read, written } = enc.encodeInto(new Uint8Array(0), dst);
    if (read !== 0) throw new Error(`flush read ${read} bytes from an empty src`);
    if (written === 0) break;
    out.push(dst.slice(0, written));
    if (--budget < 0) throw new Error("flush did not finish");
  }
  return join(out);
}

test("netascii: one-shot and streaming match the reference, round trip", () => {
  const failures: string[] = [];
  let mismatches = 0;
  const report = (i: number, what: string, input: Uint8Array, got: unknown, want: Uint8Array) => {
    mismatches++;
    if (failures.length < MAX_REPORTED) {
      const g = got instanceof Uint8Array ? hex(got, 120) : show(got);
      failures.push(`  index ${i}, ${what}: input ${hex(input, 120)}\n    core ${g}\n    ref  ${hex(want, 120)}`);
    }
  };
  for (let i = 0; i < NETASCII_COUNT; i++) {
    const r = rng(subSeed(SEED ^ 0x0d0a, i));
    const file = netasciiBytes(r);
    const wire = netasciiBytes(r); // arbitrary wire bytes, incl. bare CR, CR CR LF, trailing CR

    const refEnc = ref.netasciiEncode(file);
    const refDecFile = ref.netasciiDecode(refEnc);
    if (!bytesEqual(refDecFile, file)) report(i, "reference decode(encode(x))", file, refDecFile, file);
    const refDecWire = ref.netasciiDecode(wire);

    const e = call(() => core.netasciiEncode(file));
    if (!(e instanceof Uint8Array) || !bytesEqual(e, refEnc)) report(i, "netasciiEncode", file, e, refEnc);
    const d = call(() => core.netasciiDecode(wire));
    if (!(d instanceof Uint8Array) || !bytesEqual(d, refDecWire)) report(i, "netasciiDecode", wire, d, refDecWire);
    const rt = call(() => core.netasciiDecode(core.netasciiEncode(file)));
    if (!(rt instanceof Uint8Array) || !bytesEqual(rt, file)) report(i, "decode(encode(x))", file, rt, file);

    const sd = call(() => streamDecode(r, wire));
    if (!(sd instanceof Uint8Array) || !bytesEqual(sd, refDecWire)) report(i, "NetasciiDecoder (chunked)", wire, sd, refDecWire);
    const sd2 = call(() => streamDecode(r, refEnc));
    if (!(sd2 instanceof Uint8Array) || !bytesEqual(sd2, file)) report(i, "NetasciiDecoder (chunked, encoded file)", refEnc, sd2, file);
    const se = call(() => streamEncode(r, file));
    if (!(se instanceof Uint8Array) || !bytesEqual(se, refEnc)) report(i, "NetasciiEncoder (chunked, random dst)", file, se, refEnc);
  }
  fail("netascii", failures, mismatches);
});

test("netascii: reference spot checks", () => {
  const b = (...x: number[]) => Uint8Array.from(x);
  assert.equal(Array.from(ref.netasciiEncode(b(0x61, 0x0a, 0x0d, 0))), [0x61, 0x0d, 0x0a, 0x0d, 0, 0]);
  assert.equal(Array.from(ref.netasciiDecode(b(0x0d, 0x0d, 0x0a))), [0x0d, 0x0a]);
  assert.equal(Array.from(ref.netasciiDecode(b(0x0d, 0, 0x0d, 0x41, 0x0a, 0, 0x0d))), [0x0d, 0x0d, 0x41, 0x0a, 0, 0x0d]);
});

test.run();
