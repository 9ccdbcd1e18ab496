// Emmer's packet hot path, compiled to WebAssembly (see scripts/build-wasm.mjs).
//
// Everything here works on raw pointers into the module's one linear memory; no
// strings and no objects cross the boundary. core/codec.ts owns the memory layout:
// it copies datagrams in, reads the decode results out, and hands out arena slots.
// The rules implemented here are mirrored, independently, by
// tests/support/reference_codec.ts, and a differential test keeps the two equal.

// Shared with core/packet.ts (ParseFailure, MAX_* constants).
const TOO_SHORT: i32 = 1;
const BAD_OPCODE: i32 = 2;
const UNTERMINATED: i32 = 3;
const EMPTY_FILENAME: i32 = 4;
const BAD_MODE: i32 = 5;
const OPTION_WITHOUT_VALUE: i32 = 6;
const TOO_MANY_OPTIONS: i32 = 7;
const TOO_LONG: i32 = 8;

const MAX_CONTROL_PACKET: u32 = 4096;
const MAX_DATAGRAM: u32 = 65468;
const MAX_OPTIONS: u32 = 32;
const MAX_ERROR_PACKET: u32 = 512;

const MODE_NETASCII: u32 = 1;
const MODE_OCTET: u32 = 2;
const MODE_MAIL: u32 = 3;

const CR: u8 = 13;
const LF: u8 = 10;

/** First byte the host may use: everything below is this module's static data. */
export function heapBase(): usize {
  return __heap_base;
}

@inline function u16be(p: usize): u32 {
  return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1);
}

@inline function putU16be(p: usize, v: u32): void {
  store<u8>(p, <u8>(v >> 8));
  store<u8>(p + 1, <u8>v);
}

@inline function setOut(out: usize, index: u32, v: u32): void {
  store<u32>(out + (<usize>index << 2), v);
}

/** Offset of the first NUL in [from, end), or `end` when there is none. */
function findNul(from: usize, end: usize): usize {
  let p = from;
  while (p < end && load<u8>(p) != 0) p++;
  return p;
}

@inline function lower(c: u32): u32 {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/** ASCII case-insensitive compare of [p, p+len) with a lower-case literal held in `lit`. */
function modeIs(p: usize, len: usize, lit: string): bool {
  if (len != <usize>lit.length) return false;
  for (let i: usize = 0; i < len; i++) {
    if (lower(<u32>load<u8>(p + i)) != <u32>lit.charCodeAt(<i32>i)) return false;
  }
  return true;
}

/**
 * Parses `name\0value\0` pairs from `p` to `end` into out[6] (count) and
 * out[7 + 4i ..] (name start, name length, value start, value length), all
 * offsets relative to `base`. Lower-cases names in place. Returns 0 or -reason.
 */
function parseOptions(base: usize, p: usize, end: usize, out: usize): i32 {
  let count: u32 = 0;
  while (p < end) {
    if (load<u8>(p) == 0) break; // an empty name ends the list: tolerates zero padding
    const nameEnd = findNul(p, end);
    if (nameEnd == end) return -UNTERMINATED;
    if (nameEnd + 1 == end) return -OPTION_WITHOUT_VALUE;
    const valueStart = nameEnd + 1;
    const valueEnd = findNul(valueStart, end);
    if (valueEnd == end) return -UNTERMINATED;
    if (count == MAX_OPTIONS) return -TOO_MANY_OPTIONS;
    for (let q = p; q < nameEnd; q++) store<u8>(q, <u8>lower(<u32>load<u8>(q)));
    const slot: u32 = 7 + count * 4;
    setOut(out, slot, <u32>(p - base));
    setOut(out, slot + 1, <u32>(nameEnd - p));
    setOut(out, slot + 2, <u32>(valueStart - base));
    setOut(out, slot + 3, <u32>(valueEnd - valueStart));
    count++;
    p = valueEnd + 1;
  }
  setOut(out, 6, count);
  return 0;
}

/**
 * Decodes the datagram at [ptr, ptr+len). Returns the opcode (1..6) or -reason.
 * Results go to `out` as u32s:
 *   [0] block (DATA, ACK) or error code (ERROR)
 *   [1] [2] start and length of the filename, the ERROR message, or the DATA payload
 *   [3] [4] start and length of the mode; [5] mode kind (1 netascii, 2 octet, 3 mail)
 *   [6] option count; [7 + 4i ..] option i: name start, name length, value start, value length
 * Starts are offsets from ptr.
 */
export function decode(ptr: usize, len: u32, out: usize): i32 {
  if (len < 2) return -TOO_SHORT;
  const op = u16be(ptr);
  if (op < 1 || op > 6) return -BAD_OPCODE;
  const end = ptr + len;
  if (op == 3) {
    if (len > MAX_DATAGRAM) return -TOO_LONG;
    if (len < 4) return -TOO_SHORT;
    setOut(out, 0, u16be(ptr + 2));
    setOut(out, 1, 4);
    setOut(out, 2, len - 4);
    return 3;
  }
  if (len > MAX_CONTROL_PACKET) return -TOO_LONG;
  if (op == 4) {
    if (len < 4) return -TOO_SHORT;
    setOut(out, 0, u16be(ptr + 2));
    return 4;
  }
  if (op == 5) {
    if (len < 4) return -TOO_SHORT;
    setOut(out, 0, u16be(ptr + 2));
    const msgEnd = findNul(ptr + 4, end); // a missing NUL is tolerated: the message runs to the end
    setOut(out, 1, 4);
    setOut(out, 2, <u32>(msgEnd - ptr - 4));
    return 5;
  }
  if (op == 6) {
    const r = parseOptions(ptr, ptr + 2, end, out);
    return r < 0 ? r : 6;
  }
  // RRQ / WRQ
  const nameEnd = findNul(ptr + 2, end);
  if (nameEnd == end) return -UNTERMINATED;
  if (nameEnd == ptr + 2) return -EMPTY_FILENAME;
  const modeStart = nameEnd + 1;
  const modeEnd = findNul(modeStart, end);
  if (modeEnd == end) return -UNTERMINATED;
  const modeLen = modeEnd - modeStart;
  let kind: u32 = 0;
  if (modeIs(modeStart, modeLen, "netascii")) kind = MODE_NETASCII;
  else if (modeIs(modeStart, modeLen, "octet")) kind = MODE_OCTET;
  else if (modeIs(modeStart, modeLen, "mail")) kind = MODE_MAIL;
  else return -BAD_MODE;
  setOut(out, 1, 2);
  setOut(out, 2, <u32>(nameEnd - ptr - 2));
  setOut(out, 3, <u32>(modeStart - ptr));
  setOut(out, 4, <u32>modeLen);
  setOut(out, 5, kind);
  const r = parseOptions(ptr, modeEnd + 1, end, out);
  return r < 0 ? r : <i32>op;
}

/** Writes ACK `block` at ptr; returns its length. */
export function encodeAck(ptr: usize, block: u32): u32 {
  putU16be(ptr, 4);
  putU16be(ptr + 2, block & 0xffff);
  return 4;
}

/** Writes a DATA header for `block` at ptr (the payload follows in place). */
export function encodeDataHeader(ptr: usize, block: u32): void {
  putU16be(ptr, 3);
  putU16be(ptr + 2, block & 0xffff);
}

/**
 * Writes DATA headers in place for `count` consecutive blocks of a ring of
 * `slots` slots of `stride` bytes at `base`, starting at slot `firstSlot` with
 * block sequence number `firstSeq` (wrapped to 16 bits on the wire).
 */
export function writeDataHeaders(base: usize, stride: u32, slots: u32, firstSlot: u32, firstSeq: u32, count: u32): void {
  let slot = firstSlot;
  let seq = firstSeq;
  for (let i: u32 = 0; i < count; i++) {
    const p = base + <usize>slot * <usize>stride;
    putU16be(p, 3);
    putU16be(p + 2, seq & 0xffff);
    seq++;
    slot++;
    if (slot == slots) slot = 0;
  }
}

/**
 * Completes an ERROR packet whose message bytes (`msgLen` of them) the host wrote
 * at ptr+4: drops NUL bytes, caps the packet at 512 bytes, writes the header and
 * the terminating NUL. Returns the packet length.
 */
export function encodeError(ptr: usize, code: u32, msgLen: u32): u32 {
  putU16be(ptr, 5);
  putU16be(ptr + 2, code & 0xffff);
  const src = ptr + 4;
  let w: usize = src;
  const cap: usize = src + <usize>(MAX_ERROR_PACKET - 5);
  for (let r = src; r < src + msgLen && w < cap; r++) {
    const c = load<u8>(r);
    if (c != 0) {
      store<u8>(w, c);
      w++;
    }
  }
  store<u8>(w, 0);
  return <u32>(w + 1 - ptr);
}

/** Writes the opcode in front of a request or OACK body the host wrote at ptr+2. */
export function encodeOpcode(ptr: usize, op: u32, bodyLen: u32): u32 {
  putU16be(ptr, op);
  return bodyLen + 2;
}

/**
 * Netascii, file to wire: LF -> CR LF, CR -> CR NUL. Converts from
 * [src, src+srcLen) into [dst, dst+dstCap) until either runs out.
 * state[0]: second byte of a pair still owed (byte + 1; 0 for none), emitted first.
 * state[1]: set to the number of source bytes consumed.
 * Returns the number of bytes written.
 */
export function netasciiEncode(src: usize, srcLen: u32, dst: usize, dstCap: u32, state: usize): u32 {
  let w: usize = dst;
  const wEnd = dst + <usize>dstCap;
  const owed = load<u32>(state);
  if (owed != 0 && w < wEnd) {
    store<u8>(w++, <u8>(owed - 1));
    store<u32>(state, 0);
  }
  let r: usize = src;
  const rEnd = src + <usize>srcLen;
  if (load<u32>(state) == 0) {
    while (r < rEnd && w < wEnd) {
      const c = load<u8>(r++);
      if (c == LF || c == CR) {
        store<u8>(w++, CR);
        const second: u8 = c == LF ? LF : 0;
        if (w < wEnd) store<u8>(w++, second);
        else {
          store<u32>(state, <u32>second + 1);
          break;
        }
      } else {
        store<u8>(w++, c);
      }
    }
  }
  store<u32>(state + 4, <u32>(r - src));
  return <u32>(w - dst);
}

/**
 * Netascii, wire to file: CR LF -> LF, CR NUL -> CR, CR x -> CR x.
 * state[0]: 1 when the previous chunk ended in a CR not yet resolved.
 * dst needs room for srcLen + 1 bytes. Returns the number of bytes written.
 * With srcLen 0, flushes a pending CR (end of transfer).
 */
export function netasciiDecode(src: usize, srcLen: u32, dst: usize, state: usize): u32 {
  let w: usize = dst;
  let pendingCr = load<u32>(state) != 0;
  if (srcLen == 0) {
    if (pendingCr) store<u8>(w++, CR);
    store<u32>(state, 0);
    return <u32>(w - dst);
  }
  const rEnd = src + <usize>srcLen;
  for (let r = src; r < rEnd; r++) {
    const c = load<u8>(r);
    if (pendingCr) {
      pendingCr = false;
      if (c == LF) {
        store<u8>(w++, LF);
        continue;
      }
      store<u8>(w++, CR);
      if (c == 0) continue;
    }
    if (c == CR) pendingCr = true;
    else store<u8>(w++, c);
  }
  store<u32>(state, pendingCr ? 1 : 0);
  return <u32>(w - dst);
}
