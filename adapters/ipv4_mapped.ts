/**
 * A socket bound to "::" is dual-stack: IPv4 peers arrive as IPv4-mapped IPv6
 * addresses ("::ffff:127.0.0.1"). The adapters hand them on as plain IPv4, so a
 * client has one spelling in handlers, logs and per-address limits whichever
 * socket it reached; Node's adapter maps them back when it sends.
 */
export function unmapIPv4(address: string): string {
  return address.startsWith("::ffff:") && address.indexOf(".", 7) > 0 ? address.slice(7) : address;
}

/** The address a send takes: an IPv6 socket reaches an IPv4 peer (handed on unmapped) only by its mapped address. */
export function mapIPv4(address: string, ipv6Socket: boolean): string {
  return ipv6Socket && !address.includes(":") ? `::ffff:${address}` : address;
}
