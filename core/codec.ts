/**
 * The TypeScript face of the WebAssembly codec (assembly/index.ts).
 *
 * The module is instantiated once, synchronously, from the bytes embedded in
 * core/codec_wasm.ts. Its linear memory is laid out as:
 *
 * ```
 *  0 .. heapBase        the module's static data
 *  IN   (4 KiB)         a datagram's header or whole control packet, copied in for decode
 *  OUT  (540 B)         decode results (u32 fields, see assembly/index.ts)
 *  NA   (16 B)          netascii converter state, loaded and saved around each call
 *  SCRATCH (128 KiB)    small packets being encoded; netascii one-shot conversions
 *  TRASH (64 KiB)       late fills of ended transfers (never read)
 *  arena ...            block rings handed out by core/arena.ts (grows the memory)
 * ```
 *
 * Decoding never throws: a malformed datagram is a {@link ParseError} value.
 *
 * @module
 */
import { CODEC_WASM_BASE64 } from "./codec_wasm.ts";
import {
  MAX_CONTROL_PACKET,
  MAX_OPTIONS,
  type Mode,
  Opcode,
  type Options,
  type Packet,
  type ParseError,
  parseError,
  type RequestPacket,
} from "./packet.ts";

interface CodecExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  decode(ptr: number, len: number, out: number): number;
  encodeAck(ptr: number, block: number): number;
  encodeDataHeader(ptr: number, block: number): void;
  writeDataHeaders(base: number, stride: number, slots: number, firstSlot: number, firstSeq: number, count: number): void;
  encodeError(ptr: number, code: number, msgLen: number): number;
  encodeOpcode(ptr: number, op: number, bodyLen: number): number;
  netasciiEncode(src: number, srcLen: number, dst: number, dstCap: number, state: number): number;
  netasciiDecode(src: number, srcLen: number, dst: number, state: number): number;
}

function instantiate(): CodecExports {
  const bin = atob(CODEC_WASM_BASE64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const module = new WebAssembly.Module(bytes);
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort() {
        throw new Error("emmer codec: WebAssembly abort");
      },
    },
  });
  return instance.exports as unknown as CodecExports;
}

/** The raw WebAssembly exports, for core/arena.ts and the block sources. */
export const wasm: CodecExports = instantiate();

const align = (n: number, a: number) => Math.ceil(n / a) * a;
const IN = align(wasm.heapBase(), 16);
const OUT = IN + MAX_CONTROL_PACKET;
const NA = OUT + (7 + 4 * MAX_OPTIONS) * 4;
const SCRATCH = align(NA + 16, 16);
export const SCRATCH_SIZE = 128 * 1024;
/**
 * Where late fills of an ended transfer land (one block's worth): its ring may
 * already serve another transfer. What is written here is never read.
 */
export const TRASH = align(SCRATCH + SCRATCH_SIZE, 64);
export const TRASH_SIZE = 65536;
/** First byte free for core/arena.ts. */
export const ARENA_BASE: number = align(TRASH + TRASH_SIZE, 64);

let cachedBuffer: ArrayBufferLike | null = null;
let cachedU8: Uint8Array = new Uint8Array(0);
let cachedU32: Uint32Array = new Uint32Array(0);

/**
 * A view of the whole linear memory. Views go stale (detached) when the memory
 * grows, so every access goes through here rather than holding one.
 */
export function memory(): Uint8Array {
  const buf = wasm.memory.buffer;
  if (buf !== cachedBuffer) {
    cachedBuffer = buf;
    cachedU8 = new Uint8Array(buf);
    cachedU32 = new Uint32Array(buf);
  }
  return cachedU8;
}

function memory32(): Uint32Array {
  memory();
  return cachedU32;
}

/**
 * Grows the memory so that [0, end) exists. Returns false when the runtime refuses.
 *
 * Growth comes in steps of at least 16 MiB, not page by page: each memory.grow is
 * costly, and a grow per new transfer during a boot storm loses requests arriving
 * meanwhile (bench/burst.ts). Larger steps cost resident memory that linear memory
 * never gives back. BENCHMARKS.md ("WebAssembly memory growth") has the figures.
 */
export function ensureMemory(end: number): boolean {
  const have = wasm.memory.buffer.byteLength;
  if (end <= have) return true;
  const needed = Math.ceil((end - have) / 65536);
  const step = Math.max(needed, 256);
  for (const pages of step > needed ? [step, needed] : [needed]) {
    try {
      wasm.memory.grow(pages);
      return true;
    } catch { /* a large step may exceed the runtime's limit: try what is needed */ }
  }
  return false;
}

// Reserve the fixed regions once.
ensureMemory(ARENA_BASE);

// ignoreBOM: a leading byte-order mark stays (as U+FEFF) instead of vanishing, so that
// "\xEF\xBB\xBFname" and "name" stay two names (serveDir would otherwise map both to one file).
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();
const MODES: Mode[] = ["netascii", "netascii", "octet", "mail"];

function text(start: number, len: number): string {
  return utf8.decode(memory().subarray(start, start + len));
}

function readOptions(out32: number): Options {
  const o = memory32();
  const count = o[out32 + 6];
  const options: Options = {};
  for (let i = 0; i < count; i++) {
    const s = out32 + 7 + 4 * i;
    const name = text(IN + o[s], o[s + 1]);
    if (Object.hasOwn(options, name)) continue;
    // defineProperty, not assignment: an option named "__proto__" must stay an own property
    Object.defineProperty(options, name, { value: text(IN + o[s + 2], o[s + 3]), enumerable: true, writable: true, configurable: true });
  }
  return options;
}

/** Decodes one datagram. DATA payloads are views into `bytes`, not copies. */
export function decode(bytes: Uint8Array): Packet | ParseError {
  const len = bytes.length;
  // Only what the decoder reads is copied in: a DATA header, or a control packet of legal size.
  const isData = len >= 2 && bytes[0] === 0 && bytes[1] === Opcode.DATA;
  const copy = Math.min(len, isData ? 4 : MAX_CONTROL_PACKET);
  memory().set(copy === len ? bytes : bytes.subarray(0, copy), IN);
  const r = wasm.decode(IN, len, OUT);
  if (r < 0) return parseError(-r);
  const o = memory32();
  const out32 = OUT >>> 2;
  switch (r) {
    case Opcode.DATA:
      return { op: Opcode.DATA, block: o[out32], payload: bytes.subarray(4) };
    case Opcode.ACK:
      return { op: Opcode.ACK, block: o[out32] };
    case Opcode.ERROR:
      return { op: Opcode.ERROR, code: o[out32], message: text(IN + o[out32 + 1], o[out32 + 2]) };
    case Opcode.OACK:
      return { op: Opcode.OACK, options: readOptions(out32) };
    default:
      return {
        op: r as RequestPacket["op"],
        filename: text(IN + o[out32 + 1], o[out32 + 2]),
        mode: MODES[o[out32 + 5]],
        options: readOptions(out32),
      };
  }
}

/** Writes an ACK into linear memory at ptr (for buffers the session owns). */
export function writeAck(ptr: number, block: number): number {
  return wasm.encodeAck(ptr, block);
}

/**
 * Writes an ERROR packet into linear memory at ptr; `room` (at least 512) bytes
 * are available. NULs are dropped first, then the UTF-8 bytes are cut so the
 * packet fits in 512 bytes (a cut may split a character: it is bytes on the wire).
 */
export function writeError(ptr: number, room: number, code: number, message: string): number {
  const bytes = encoder.encode(message.replaceAll("\0", ""));
  const len = Math.min(bytes.length, room - 5);
  memory().set(len === bytes.length ? bytes : bytes.subarray(0, len), ptr + 4);
  return wasm.encodeError(ptr, code, len);
}

function copyOut(len: number): Uint8Array {
  return memory().slice(SCRATCH, SCRATCH + len);
}

export function encodeAck(block: number): Uint8Array {
  return copyOut(wasm.encodeAck(SCRATCH, block));
}

export function encodeError(code: number, message: string): Uint8Array {
  return copyOut(writeError(SCRATCH, 512, code, message));
}

export function encodeData(block: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = 0;
  out[1] = Opcode.DATA;
  out[2] = (block >>> 8) & 0xff;
  out[3] = block & 0xff;
  out.set(payload, 4);
  return out;
}

function writeStrings(at: number, strings: string[]): number {
  const mem = memory();
  let p = at;
  for (const s of strings) {
    const { written } = encoder.encodeInto(s, mem.subarray(p, SCRATCH + SCRATCH_SIZE - 1));
    p += written;
    mem[p++] = 0;
  }
  return p - at;
}

function optionStrings(options: Options): string[] {
  const list: string[] = [];
  for (const [k, v] of Object.entries(options)) list.push(k, v);
  return list;
}

export function encodeOack(options: Options): Uint8Array {
  const body = writeStrings(SCRATCH + 2, optionStrings(options));
  return copyOut(wasm.encodeOpcode(SCRATCH, Opcode.OACK, body));
}

export function encodeRequest(op: RequestPacket["op"], filename: string, mode: string, options: Options): Uint8Array {
  const body = writeStrings(SCRATCH + 2, [filename, mode, ...optionStrings(options)]);
  return copyOut(wasm.encodeOpcode(SCRATCH, op, body));
}

// ---- netascii ---------------------------------------------------------------

const HALF = SCRATCH_SIZE / 2;

/**
 * File bytes to netascii on the wire, resumable at any output boundary (a CR
 * pair may straddle two DATA blocks).
 */
export class NetasciiEncoder {
  #owed = 0;

  /** Pointer form, for sources that stage bytes in linear memory. */
  encodePtr(src: number, srcLen: number, dst: number, dstCap: number): { read: number; written: number } {
    const s = memory32();
    const st = NA >>> 2;
    s[st] = this.#owed;
    const written = wasm.netasciiEncode(src, srcLen, dst, dstCap, NA);
    this.#owed = s[st];
    return { read: s[st + 1], written };
  }

  /** True while the second byte of a CR pair is still owed to the output. */
  get pending(): boolean {
    return this.#owed !== 0;
  }

  encodeInto(src: Uint8Array, dst: Uint8Array): { read: number; written: number } {
    let read = 0;
    let written = 0;
    do {
      const n = Math.min(src.length - read, HALF);
      const cap = Math.min(dst.length - written, HALF);
      memory().set(src.subarray(read, read + n), SCRATCH);
      const r = this.encodePtr(SCRATCH, n, SCRATCH + HALF, cap);
      dst.set(memory().subarray(SCRATCH + HALF, SCRATCH + HALF + r.written), written);
      read += r.read;
      written += r.written;
      if (r.read < n || r.written === 0) break;
    } while (read < src.length && written < dst.length);
    return { read, written };
  }
}

/** Netascii on the wire to file bytes; a CR at the end of a chunk waits for the next. */
export class NetasciiDecoder {
  #pendingCr = 0;

  #run(src: Uint8Array | null): Uint8Array {
    const s = memory32();
    const st = NA >>> 2;
    if (src === null) {
      s[st] = this.#pendingCr;
      const n = wasm.netasciiDecode(SCRATCH, 0, SCRATCH + HALF, NA);
      this.#pendingCr = 0;
      return memory().slice(SCRATCH + HALF, SCRATCH + HALF + n);
    }
    const out = new Uint8Array(src.length + 1);
    let written = 0;
    for (let at = 0; at < src.length; at += HALF - 1) {
      const chunk = src.subarray(at, at + HALF - 1);
      memory().set(chunk, SCRATCH);
      memory32()[st] = this.#pendingCr;
      const n = wasm.netasciiDecode(SCRATCH, chunk.length, SCRATCH + HALF, NA);
      this.#pendingCr = memory32()[st];
      out.set(memory().subarray(SCRATCH + HALF, SCRATCH + HALF + n), written);
      written += n;
    }
    return out.subarray(0, written);
  }

  push(chunk: Uint8Array): Uint8Array {
    return chunk.length === 0 ? new Uint8Array(0) : this.#run(chunk);
  }

  end(): Uint8Array {
    return this.#run(null);
  }
}

export function netasciiEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length * 2 + 1);
  const enc = new NetasciiEncoder();
  const { written } = enc.encodeInto(data, out);
  return out.slice(0, written);
}

export function netasciiDecode(data: Uint8Array): Uint8Array {
  const dec = new NetasciiDecoder();
  const a = dec.push(data);
  const b = dec.end();
  if (b.length === 0) return a.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
