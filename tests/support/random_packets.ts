/**
 * Seeded random TFTP packets and mutators for the codec differential test.
 *
 * Everything is deterministic in the seed: `packetAt(seed, i)` rebuilds the i-th packet of a
 * run, so a failure report (seed, index) is enough to reproduce it.
 *
 * @module
 */

export type Rng = () => number; // uniform in [0, 1)

/** mulberry32: small, fast, good enough for fuzzing. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A per-index seed, so packet i can be rebuilt without replaying 0..i-1. */
export function subSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function int(r: Rng, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

export function chance(r: Rng, p: number): boolean {
  return r() < p;
}

export function randomBytes(r: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const w = (r() * 4294967296) >>> 0;
    out[i] = w;
    out[i + 1] = w >>> 8;
    out[i + 2] = w >>> 16;
    out[i + 3] = w >>> 24;
  }
  for (; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

const enc = new TextEncoder();

export function concat(parts: (Uint8Array | number[])[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------- strings

const ASCII_WORDS = ["boot", "pxelinux.0", "a", "README", "x/y/z.bin", "..", "C:\\tftp\\f", "file name", "UPPER", "MiXeD"];
const UNICODE_BITS = ["é", "Ä", "ß", "中文", "日本語", "😀", "𝄞", "Ω", "İ", "ſ", "K", "\u00ff", "\u0100", "\uFEFF", "\u200b", "\uFFFD"];

/** A random string (no NUL), mixing ASCII, non-ASCII BMP, astral chars, a BOM now and then. */
export function randomText(r: Rng, maxChars: number, allowEmpty = true): string {
  const n = int(r, allowEmpty ? 0 : 1, maxChars);
  let s = "";
  while (s.length < n) {
    const k = r();
    if (k < 0.55) s += String.fromCharCode(int(r, 0x20, 0x7e));
    else if (k < 0.7) s += pick(r, ASCII_WORDS);
    else if (k < 0.9) s += pick(r, UNICODE_BITS);
    else if (k < 0.97) s += String.fromCodePoint(int(r, 0x80, 0xd7ff));
    else s += String.fromCodePoint(int(r, 0x10000, 0x10ffff));
  }
  if (!allowEmpty && s.length === 0) s = "f";
  return s;
}

/** Bytes for a string field: usually UTF-8 of random text, sometimes raw non-NUL bytes (invalid UTF-8). */
function fieldBytes(r: Rng, maxChars: number, allowEmpty = true): Uint8Array {
  const k = r();
  if (k < 0.12) {
    const b = randomBytes(r, int(r, allowEmpty ? 0 : 1, maxChars));
    for (let i = 0; i < b.length; i++) if (b[i] === 0) b[i] = int(r, 1, 255);
    return b;
  }
  if (k < 0.16) return concat([[0xef, 0xbb, 0xbf], enc.encode(randomText(r, maxChars, allowEmpty))]); // BOM
  return enc.encode(randomText(r, maxChars, allowEmpty));
}

export function randomCase(r: Rng, s: string): string {
  const k = r();
  if (k < 0.4) return s;
  if (k < 0.55) return s.toUpperCase();
  let out = "";
  for (const ch of s) out += chance(r, 0.5) ? ch.toUpperCase() : ch;
  return out;
}

const MODES = ["netascii", "octet", "mail"];
const BOGUS_MODES = [
  "", "binary", "ascii", "image", "octets", "octe", "netascii ", " octet", "net ascii", "mail\u00e9",
  "netaſcii", "maİl", "OCTET\u0001", "octet\t", "\uFEFFoctet", "0ctet", "netasci", "mailx",
];

function randomModeBytes(r: Rng): Uint8Array {
  const k = r();
  if (k < 0.82) return enc.encode(randomCase(r, pick(r, MODES)));
  if (k < 0.95) return enc.encode(randomCase(r, pick(r, BOGUS_MODES)).replace(/\0/g, ""));
  return fieldBytes(r, 12);
}

export const KNOWN_OPTIONS = ["blksize", "tsize", "timeout", "windowsize", "utimeout", "rollover", "multicast"];
const JUNK_OPTIONS = ["x", "foo", "blk size", "blksize2", "TSIZE ", "constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "0", "42", "Ä", "É-opt", "wİndow"];

function randomOptionValue(r: Rng): string {
  const k = r();
  if (k < 0.45) return String(int(r, 0, 70000));
  if (k < 0.55) return "";
  if (k < 0.65) return pick(r, ["0", "1", "8", "512", "1428", "65464", "65465", "-1", "1e3", " 512", "0x200", "99999999999999999999"]);
  return randomText(r, 20);
}

export function randomOptionName(r: Rng): string {
  const k = r();
  if (k < 0.55) return randomCase(r, pick(r, KNOWN_OPTIONS));
  if (k < 0.8) return randomCase(r, pick(r, JUNK_OPTIONS));
  return randomText(r, 16, false);
}

/** Option bytes (name\0value\0)*: 0..40 pairs, duplicate names, raw-byte names, optional zero padding. */
function randomOptionBytes(r: Rng): Uint8Array {
  const k = r();
  const n = k < 0.25 ? 0 : k < 0.85 ? int(r, 1, 6) : k < 0.95 ? int(r, 7, 33) : int(r, 30, 40);
  const parts: (Uint8Array | number[])[] = [];
  const used: string[] = [];
  for (let i = 0; i < n; i++) {
    let name: Uint8Array;
    if (used.length > 0 && chance(r, 0.15)) name = enc.encode(randomCase(r, pick(r, used))); // duplicate
    else if (chance(r, 0.06)) name = fieldBytes(r, 10, false);
    else {
      const s = randomOptionName(r);
      used.push(s);
      name = enc.encode(s);
    }
    const value = chance(r, 0.05) ? fieldBytes(r, 10) : enc.encode(randomOptionValue(r));
    parts.push(name, [0], value, [0]);
  }
  if (chance(r, 0.1)) parts.push(new Uint8Array(int(r, 1, 10))); // zero padding
  return concat(parts);
}

function u16(v: number): number[] {
  return [(v >> 8) & 255, v & 255];
}

function randomBlock(r: Rng): number {
  const k = r();
  if (k < 0.2) return pick(r, [0, 1, 255, 256, 65534, 65535]);
  return int(r, 0, 65535);
}

// ---------------------------------------------------------------------------- valid packets

export function randomRequest(r: Rng, op?: 1 | 2): Uint8Array {
  return concat([
    [0, op ?? int(r, 1, 2)],
    fieldBytes(r, 60, false),
    [0],
    randomModeBytes(r),
    [0],
    randomOptionBytes(r),
  ]);
}

export function randomData(r: Rng): Uint8Array {
  const k = r();
  let n: number;
  if (k < 0.95) n = int(r, 0, 1500);
  else if (k < 0.98) n = int(r, 1500, 65464);
  else n = pick(r, [65463, 65464, 65464, 65465, 65466, 70000]);
  return concat([[0, 3, ...u16(randomBlock(r))], randomBytes(r, n)]);
}

export function randomAck(r: Rng): Uint8Array {
  const parts: (Uint8Array | number[])[] = [[0, 4, ...u16(randomBlock(r))]];
  if (chance(r, 0.1)) parts.push(randomBytes(r, int(r, 1, 20)));
  return concat(parts);
}

export function randomError(r: Rng): Uint8Array {
  const code = chance(r, 0.8) ? int(r, 0, 8) : int(r, 0, 65535);
  const parts: (Uint8Array | number[])[] = [[0, 5, ...u16(code)], fieldBytes(r, 120)];
  const k = r();
  if (k < 0.8) parts.push([0]);
  else if (k < 0.9) parts.push([0], randomBytes(r, int(r, 1, 20))); // junk after the NUL
  // else: unterminated message (lenient)
  return concat(parts);
}

export function randomOack(r: Rng): Uint8Array {
  return concat([[0, 6], randomOptionBytes(r)]);
}

export function randomValidPacket(r: Rng): Uint8Array {
  const k = r();
  if (k < 0.35) return randomRequest(r);
  if (k < 0.55) return randomData(r);
  if (k < 0.65) return randomAck(r);
  if (k < 0.78) return randomError(r);
  return randomOack(r);
}

// ---------------------------------------------------------------------------- mutators

export function flipBytes(r: Rng, p: Uint8Array): Uint8Array {
  if (p.length === 0) return p;
  const out = p.slice();
  const n = int(r, 1, 4);
  for (let i = 0; i < n; i++) {
    const at = chance(r, 0.3) ? int(r, 0, Math.min(3, out.length - 1)) : int(r, 0, out.length - 1);
    out[at] = chance(r, 0.5) ? out[at] ^ (1 << int(r, 0, 7)) : int(r, 0, 255);
  }
  return out;
}

export function truncate(r: Rng, p: Uint8Array): Uint8Array {
  return p.slice(0, int(r, 0, p.length));
}

export function extend(r: Rng, p: Uint8Array): Uint8Array {
  return concat([p, randomBytes(r, int(r, 1, 40))]);
}

export function insertNul(r: Rng, p: Uint8Array): Uint8Array {
  const at = int(r, 0, p.length);
  return concat([p.subarray(0, at), [0], p.subarray(at)]);
}

export function deleteNul(r: Rng, p: Uint8Array): Uint8Array {
  const nuls: number[] = [];
  for (let i = 2; i < p.length; i++) if (p[i] === 0) nuls.push(i);
  if (nuls.length === 0) return p;
  const at = pick(r, nuls);
  return concat([p.subarray(0, at), p.subarray(at + 1)]);
}

export function swapOpcode(r: Rng, p: Uint8Array): Uint8Array {
  const out = p.length >= 2 ? p.slice() : new Uint8Array(2);
  const k = r();
  const op = k < 0.8 ? int(r, 0, 7) : k < 0.9 ? int(r, 0, 65535) : pick(r, [0x0100, 0x0300, 0x0601, 0xff03]);
  out[0] = op >> 8;
  out[1] = op & 255;
  return out;
}

/** A control packet (RRQ/WRQ/ERROR/OACK/ACK) longer than MAX_CONTROL_PACKET, or right at the bound. */
export function oversizeControl(r: Rng): Uint8Array {
  const target = chance(r, 0.5) ? pick(r, [4095, 4096, 4097, 4098]) : int(r, 4097, 9000);
  const op = pick(r, [1, 2, 4, 5, 6]);
  let head: Uint8Array;
  if (op === 1 || op === 2) head = concat([[0, op], enc.encode("f"), [0], enc.encode("octet"), [0]]);
  else if (op === 4) head = Uint8Array.of(0, 4, 0, 1);
  else if (op === 5) head = Uint8Array.of(0, 5, 0, 0);
  else head = Uint8Array.of(0, 6);
  const out = new Uint8Array(Math.max(target, head.length));
  out.set(head);
  // Fill with a few valid options then letters, NUL-terminated so only the length is wrong.
  let at = head.length;
  if (op !== 4) {
    const opt = enc.encode("blksize\u00001428\u0000");
    for (let i = 0; i < 2 && at + opt.length < out.length; i++, at += opt.length) out.set(opt, at);
  }
  for (; at < out.length; at++) out[at] = 0x61 + (at % 26);
  if (op !== 4) out[out.length - 1] = 0;
  return out;
}

export function oversizeData(r: Rng): Uint8Array {
  const n = chance(r, 0.5) ? pick(r, [65467, 65468, 65469, 65470]) : int(r, 65469, 70000);
  const out = randomBytes(r, n);
  out[0] = 0;
  out[1] = 3;
  return out;
}

const MUTATORS = [flipBytes, truncate, extend, insertNul, deleteNul, swapOpcode];

/** Apply 1..3 random mutators. */
export function mutate(r: Rng, p: Uint8Array): Uint8Array {
  const n = int(r, 1, 3);
  for (let i = 0; i < n; i++) p = pick(r, MUTATORS)(r, p);
  return p;
}

/**
 * The i-th packet of a run: valid (~45%), mutated (~50%), or one of the edge shapes
 * (empty, 1 byte, oversize control, oversize DATA).
 */
export function packetAt(seed: number, index: number): Uint8Array {
  const r = rng(subSeed(seed, index));
  const k = r();
  if (k < 0.45) return randomValidPacket(r);
  if (k < 0.95) return mutate(r, randomValidPacket(r));
  if (k < 0.96) return new Uint8Array(0);
  if (k < 0.97) return Uint8Array.of(int(r, 0, 255));
  if (k < 0.985) return oversizeControl(r);
  if (k < 0.99) return oversizeData(r);
  return randomBytes(r, int(r, 2, 64)); // pure noise
}
