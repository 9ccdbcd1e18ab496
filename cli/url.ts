/**
 * tftp://HOST[:PORT]/PATH as curl reads it: the host a name, an IPv4 address or an
 * IPv6 address in brackets; the port 69 unless given; the path without its leading
 * "/", percent-decoded, and a trailing ";mode=netascii" or ";mode=octet" taken as the mode.
 */

export interface TftpUrl {
  /** As written, without brackets: a name is resolved later (resolveHost). */
  host: string;
  port: number;
  /** The file name to send in the request; "" when the URL names none (tftp://host/). */
  path: string;
  mode?: "octet" | "netascii";
}

/** A URL this module refuses; the message says why. */
export class UrlError extends Error {}

export function parseTftpUrl(text: string): TftpUrl {
  const authority = /^tftp:\/\/([^/]*)/i.exec(text)?.[1] ?? "";
  if (!authority.startsWith("[") && authority.split(":").length > 2) {
    throw new UrlError(`"${text}": an IPv6 address goes in brackets, as in tftp://[::1]:69/PATH`);
  }
  const m = /^tftp:\/\/(\[[^\]]*\]|[^/:[\]]*)(?::([^/]*))?(\/.*)?$/i.exec(text);
  if (!m) {
    throw new UrlError(`"${text}" is not a tftp://HOST[:PORT]/PATH URL`);
  }
  const [, rawHost, rawPort, rawPath = ""] = m;
  const bracketed = rawHost.startsWith("[");
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  if (host === "") throw new UrlError(`"${text}" has no host`);
  if (bracketed && !host.includes(":")) throw new UrlError(`"${text}": brackets are for IPv6 addresses`);
  let port = 69;
  if (rawPort !== undefined) {
    port = /^[0-9]{1,5}$/.test(rawPort) ? Number(rawPort) : NaN;
    if (!(port >= 1 && port <= 65535)) throw new UrlError(`"${text}": the port must be 1 to 65535, not "${rawPort}"`);
  }
  let path = rawPath.slice(1);
  let mode: TftpUrl["mode"];
  const typed = /;mode=([a-z]*)$/i.exec(path);
  if (typed) {
    const name = typed[1].toLowerCase();
    if (name !== "octet" && name !== "netascii") throw new UrlError(`"${text}": the mode must be octet or netascii, not "${typed[1]}"`);
    mode = name;
    path = path.slice(0, typed.index);
  }
  try {
    path = decodeURIComponent(path);
  } catch {
    throw new UrlError(`"${text}": the path has a bad percent-escape (a "%" is written %25)`);
  }
  if (path.includes("\0")) throw new UrlError(`"${text}": a file name cannot hold a NUL byte`);
  return { host, port, path, mode };
}

/** The URL's host and port as printed in messages: [::1]:69, 127.0.0.1:69, name:69. */
export function hostPort(url: { host: string; port: number }): string {
  return url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
}
