/**
 * IP addresses and ranges (CIDR), for per-client rules. Pure: no name service,
 * no sockets. An IPv4 address that reaches a dual-stack socket as an
 * IPv4-mapped IPv6 address (::ffff:10.0.0.1) is taken as the IPv4 address it
 * is: it came over IPv4, and a rule for 10.0.0.0/8 is meant for it.
 */

export interface Address {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Range extends Address {
  prefix: number;
}

function parseV4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i]) || Number(parts[i]) > 255) return null;
    bytes[i] = Number(parts[i]);
  }
  return bytes;
}

function parseV6(text: string): Uint8Array | null {
  // A zone (fe80::1%eth0) names an interface, not part of the address.
  const at = text.indexOf("%");
  if (at >= 0) text = text.slice(0, at);
  let tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    tail = parseV4(text.slice(lastColon + 1));
    if (tail === null) return null;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
    const v = parseInt(all[i], 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  }
  if (tail) bytes.set(tail, 12);
  return bytes;
}

const isMapped = (b: Uint8Array) => b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** The address, or null if `text` is not an IP address. IPv4-mapped IPv6 addresses come back as IPv4. */
export function parseAddress(text: string): Address | null {
  const v4 = parseV4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = text.includes(":") ? parseV6(text) : null;
  if (v6 === null) return null;
  return isMapped(v6) ? { family: 4, bytes: v6.slice(12) } : { family: 6, bytes: v6 };
}

/** "10.0.0.0/8", "2001:db8::/32", or a bare address (a range of one). Throws a RangeError naming the problem. */
export function parseRange(text: string): Range {
  const slash = text.indexOf("/");
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const address = parseAddress(addrText);
  if (address === null) throw new RangeError(`"${addrText}" is not an IP address`);
  // A mapped range (::ffff:10.0.0.0/104) is the IPv4 range it stands for.
  const mappedShift = address.family === 4 && addrText.includes(":") ? 96 : 0;
  const width = address.family === 4 ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    prefix = /^[0-9]{1,3}$/.test(p) ? Number(p) - mappedShift : NaN;
    if (!(prefix >= 0 && prefix <= width)) throw new RangeError(`"${text}": the prefix length must be from ${mappedShift} to ${width + mappedShift}`);
  }
  return { ...address, prefix };
}

/** Whether `address` (text, as a socket reports it) lies in `range`. */
export function inRange(range: Range, address: string | Address): boolean {
  const a = typeof address === "string" ? parseAddress(address) : address;
  if (a === null || a.family !== range.family) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a.bytes[i] & mask) !== (range.bytes[i] & mask)) return false;
  }
  return true;
}
