/**
 * IP literals to and from struct sockaddr_in / sockaddr_in6 bytes. Peers are
 * always literals here (they come from received datagrams or the caller's
 * configuration), so there is no name resolution; anything else is a clear error.
 */
import { AF_INET, AF_INET6, SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN } from "./abi.ts";

function parseIPv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    out.push(Number(p));
  }
  return out;
}

/** 16 bytes, or null when `text` is no IPv6 literal. A zone ("%eth0") is not part of the address. */
function parseIPv6(text: string): Uint8Array | null {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => ((bytes[2 * i] = g >> 8), (bytes[2 * i + 1] = g & 0xff)));
  return bytes;
}

/** The numeric scope of "fe80::1%3"; interface names are not resolved here. */
function scopeOf(text: string): number {
  const zone = text.indexOf("%");
  if (zone < 0) return 0;
  const id = text.slice(zone + 1);
  if (!/^\d+$/.test(id)) throw new Error(`IPv6 zone "${id}" must be numeric (an interface index)`);
  return Number(id);
}

/**
 * Writes the sockaddr for `address`:`port` at `offset` of `view` and returns its length.
 * An IPv6 socket (`family` 6) reaches an IPv4 peer by its mapped address; an IPv4 socket
 * cannot reach an IPv6 one.
 */
export function writeSockaddr(view: DataView, offset: number, family: 4 | 6, address: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port ${port} is not a UDP port (0-65535)`);
  const memo = encoded[family];
  let bytes = memo.get(address);
  if (bytes === undefined) {
    bytes = encode(family, address);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(address, bytes);
  }
  for (let i = 0; i < bytes.length; i++) view.setUint8(offset + i, bytes[i]);
  view.setUint16(offset + 2, port, false);
  return bytes.length;
}

// Peers repeat (every datagram of a transfer goes to one), and parsing a literal costs more
// than the send it addresses: each family keeps the bytes of the literals it has seen.
const MEMO_MAX = 4096;
const encoded = { 4: new Map<string, Uint8Array>(), 6: new Map<string, Uint8Array>() };

/** The sockaddr of `address` with port 0; throws for what is no literal of the family. */
function encode(family: 4 | 6, address: string): Uint8Array {
  const v4 = parseIPv4(address);
  if (family === 4) {
    if (!v4) throw new Error(`"${address}" is not an IPv4 literal (this socket is IPv4)`);
    const out = new Uint8Array(SOCKADDR_IN_LEN);
    new DataView(out.buffer).setUint16(0, AF_INET, true);
    out.set(v4, 4);
    return out;
  }
  const v6 = v4 ? parseIPv6(`::ffff:${address}`) : parseIPv6(address);
  if (!v6) throw new Error(`"${address}" is not an IP literal`);
  const out = new Uint8Array(SOCKADDR_IN6_LEN);
  const v = new DataView(out.buffer);
  v.setUint16(0, AF_INET6, true);
  out.set(v6, 8); // after the port and the flow info (0)
  v.setUint32(24, v4 ? 0 : scopeOf(address), true);
  return out;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
function formatIPv6(bytes: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) (bestAt = i), (bestLen = j - i);
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** The peer in a sockaddr the kernel filled; IPv4-mapped addresses come back as plain IPv4, as the adapters hand them on. */
export function readSockaddr(view: DataView, offset: number): { address: string; port: number } {
  const family = view.getUint16(offset, true);
  const port = view.getUint16(offset + 2, false);
  if (family === AF_INET) return { address: ipv4Text(view.getUint32(offset + 4, false)), port };
  if (family === AF_INET6) {
    const bytes = new Uint8Array(view.buffer, view.byteOffset + offset + 8, 16);
    const mapped = bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
    // IPv4 peers of a dual-stack socket come back as plain IPv4, as the adapters hand them on.
    if (mapped) return { address: ipv4Text(view.getUint32(offset + 20, false)), port };
    const scope = view.getUint32(offset + 24, true);
    return { address: formatIPv6(bytes) + (scope ? `%${scope}` : ""), port };
  }
  return { address: "", port: 0 };
}

// One string per IPv4 peer, not one per datagram received from it.
const texts = new Map<number, string>();

function ipv4Text(value: number): string {
  let text = texts.get(value);
  if (text === undefined) {
    text = `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
    if (texts.size >= MEMO_MAX) texts.clear();
    texts.set(value, text);
  }
  return text;
}

/** 4 for an IPv4 literal, 6 for IPv6, null for anything else. */
export function literalFamily(address: string): 4 | 6 | null {
  if (parseIPv4(address)) return 4;
  return parseIPv6(address) ? 6 : null;
}
