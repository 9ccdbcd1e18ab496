/**
 * Reference TFTP codec in plain TypeScript, written from the decode/encode/netascii spec
 * independently of core/codec.ts (the WASM codec). Slow and obvious on purpose: it is the
 * oracle the differential test (tests/codec_diff.test.ts) compares the real codec against.
 *
 * Only types and constants come from core/packet.ts; nothing from core/codec.ts.
 *
 * @module
 */

import {
  MAX_CONTROL_PACKET,
  MAX_DATAGRAM,
  MAX_OPTIONS,
  ParseFailure,
  parseError,
  type Mode,
  type Options,
  type Packet,
  type ParseError,
} from "../../core/packet.ts";

const utf8 = new TextDecoder("utf-8", { ignoreBOM: true }); // non-fatal; a leading BOM is kept (U+FEFF), not stripped
const utf8enc = new TextEncoder();

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

function u16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

/** Index of the first NUL at or after `from`, or -1. */
function nulFrom(b: Uint8Array, from: number): number {
  for (let i = from; i < b.length; i++) if (b[i] === NUL) return i;
  return -1;
}

function text(b: Uint8Array, start: number, end: number): string {
  return utf8.decode(b.subarray(start, end));
}

/** Set an own enumerable property even for names like "__proto__". */
function setOwn(obj: Options, name: string, value: string): void {
  Object.defineProperty(obj, name, { value, writable: true, enumerable: true, configurable: true });
}

const MODES: readonly Mode[] = ["netascii", "octet", "mail"];

/** ASCII-case-insensitive match of raw bytes against a lower-case ASCII word. */
function asciiEqualsLower(b: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    let c = b[start + i];
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== word.charCodeAt(i)) return false;
  }
  return true;
}

/** Rule 8: options from `pos` to the end of `b`. */
function decodeOptions(b: Uint8Array, pos: number): { options: Options } | { error: ParseError } {
  const len = b.length;
  const options: Options = {};
  let count = 0;
  while (pos < len) {
    if (b[pos] === NUL) break; // empty name: zero padding, ignore the rest
    const nameEnd = nulFrom(b, pos);
    if (nameEnd < 0) return { error: parseError(ParseFailure.UNTERMINATED) };
    const valueStart = nameEnd + 1;
    if (valueStart === len) return { error: parseError(ParseFailure.OPTION_WITHOUT_VALUE) };
    const valueEnd = nulFrom(b, valueStart);
    if (valueEnd < 0) return { error: parseError(ParseFailure.UNTERMINATED) };
    count++;
    if (count > MAX_OPTIONS) return { error: parseError(ParseFailure.TOO_MANY_OPTIONS) };
    const nameBytes = b.slice(pos, nameEnd);
    for (let i = 0; i < nameBytes.length; i++) {
      const c = nameBytes[i];
      if (c >= 0x41 && c <= 0x5a) nameBytes[i] = c + 0x20;
    }
    const name = utf8.decode(nameBytes);
    const value = text(b, valueStart, valueEnd);
    if (!Object.prototype.hasOwnProperty.call(options, name)) setOwn(options, name, value);
    pos = valueEnd + 1;
  }
  return { options };
}

export function decode(bytes: Uint8Array): Packet | ParseError {
  const len = bytes.length;
  if (len < 2) return parseError(ParseFailure.TOO_SHORT);
  const op = u16(bytes, 0);
  if (op < 1 || op > 6) return parseError(ParseFailure.BAD_OPCODE);

  if (op === 3) {
    if (len > MAX_DATAGRAM) return parseError(ParseFailure.TOO_LONG);
    if (len < 4) return parseError(ParseFailure.TOO_SHORT);
    return { op: 3, block: u16(bytes, 2), payload: bytes.subarray(4, len) };
  }

  if (len > MAX_CONTROL_PACKET) return parseError(ParseFailure.TOO_LONG);

  switch (op) {
    case 4: {
      if (len < 4) return parseError(ParseFailure.TOO_SHORT);
      return { op: 4, block: u16(bytes, 2) };
    }
    case 5: {
      if (len < 4) return parseError(ParseFailure.TOO_SHORT);
      const end = nulFrom(bytes, 4);
      return { op: 5, code: u16(bytes, 2), message: text(bytes, 4, end < 0 ? len : end) };
    }
    case 6: {
      const r = decodeOptions(bytes, 2);
      if ("error" in r) return r.error;
      return { op: 6, options: r.options };
    }
    default: {
      // RRQ / WRQ
      const fnEnd = nulFrom(bytes, 2);
      if (fnEnd < 0) return parseError(ParseFailure.UNTERMINATED);
      if (fnEnd === 2) return parseError(ParseFailure.EMPTY_FILENAME);
      const modeStart = fnEnd + 1;
      const modeEnd = nulFrom(bytes, modeStart);
      if (modeEnd < 0) return parseError(ParseFailure.UNTERMINATED);
      const mode = MODES.find((m) => asciiEqualsLower(bytes, modeStart, modeEnd, m));
      if (mode === undefined) return parseError(ParseFailure.BAD_MODE);
      const r = decodeOptions(bytes, modeEnd + 1);
      if ("error" in r) return r.error;
      return { op: op as 1 | 2, filename: text(bytes, 2, fnEnd), mode, options: r.options };
    }
  }
}

// ---------------------------------------------------------------------------- encoders

function concat(parts: (Uint8Array | number[])[]): Uint8Array {
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

function optionParts(options: Record<string, string>): (Uint8Array | number[])[] {
  const parts: (Uint8Array | number[])[] = [];
  for (const [name, value] of Object.entries(options)) {
    parts.push(utf8enc.encode(name), [0], utf8enc.encode(value), [0]);
  }
  return parts;
}

export function encodeAck(block: number): Uint8Array {
  const b = block & 0xffff;
  return Uint8Array.of(0, 4, b >> 8, b & 255);
}

export function encodeData(block: number, payload: Uint8Array): Uint8Array {
  const b = block & 0xffff;
  return concat([[0, 3, b >> 8, b & 255], payload]);
}

export function encodeError(code: number, message: string): Uint8Array {
  const c = code & 0xffff;
  let msg = utf8enc.encode(message.split("\0").join(""));
  if (msg.length > 512 - 5) msg = msg.subarray(0, 512 - 5);
  return concat([[0, 5, c >> 8, c & 255], msg, [0]]);
}

export function encodeOack(options: Record<string, string>): Uint8Array {
  return concat([[0, 6], ...optionParts(options)]);
}

export function encodeRequest(
  op: 1 | 2,
  filename: string,
  mode: string,
  options: Record<string, string>,
): Uint8Array {
  return concat([
    [0, op],
    utf8enc.encode(filename),
    [0],
    utf8enc.encode(mode),
    [0],
    ...optionParts(options),
  ]);
}

// ---------------------------------------------------------------------------- netascii

/** File → wire: LF → CR LF, CR → CR NUL. */
export function netasciiEncode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (const c of data) {
    if (c === LF) out.push(CR, LF);
    else if (c === CR) out.push(CR, NUL);
    else out.push(c);
  }
  return Uint8Array.from(out);
}

/** Wire → file: CR LF → LF, CR NUL → CR, CR X → CR X (X reprocessed), trailing CR → CR. */
export function netasciiDecode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < data.length) {
    const c = data[i];
    if (c !== CR) {
      out.push(c);
      i++;
      continue;
    }
    if (i + 1 >= data.length) {
      out.push(CR);
      i++;
    } else if (data[i + 1] === LF) {
      out.push(LF);
      i += 2;
    } else if (data[i + 1] === NUL) {
      out.push(CR);
      i += 2;
    } else {
      out.push(CR); // the next byte is processed on the next round
      i++;
    }
  }
  return Uint8Array.from(out);
}
