/**
 * The descriptor of a socket Deno.listenDatagram made: Deno does not say which it is,
 * but the kernel does. A new descriptor is the lowest one free (POSIX), so the number
 * dup() gives just before the socket is made is the socket's, unless another thread
 * (Deno's blocking pool opening a file) took it first; the candidate is accepted only
 * when it is a UDP socket bound to the very address and port Deno reports. No two UDP
 * sockets of the process share those (a transfer's port is the kernel's free choice,
 * and nothing here binds with SO_REUSEADDR), so a match is that socket.
 */
import { AF_INET, AF_INET6, SOCK_DGRAM, SOCKADDR_SLOT, SOL_SOCKET } from "./abi.ts";
import { readSockaddr, writeSockaddr } from "./sockaddr.ts";

const SO_TYPE = 3;
const SO_PROTOCOL = 38;
const IPPROTO_UDP = 17;
/** Descriptors past the expected one that are looked at before the whole table is read. */
const NEARBY = 32;

export interface DescriptorCalls {
  dup(fd: number): number;
  close(fd: number): number;
  getsockname(fd: number, sockaddr: Uint8Array, length: Uint8Array): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, length: Uint8Array): number;
  /** A descriptor of this module's, open for as long as the finder is used (what dup() copies). */
  anchor(): number;
  /** The process's open descriptors (/proc/self/fd), or [] when they cannot be listed. */
  listOpen(): number[];
}

export class DescriptorFinder {
  readonly #calls: DescriptorCalls;
  readonly #sa = new Uint8Array(SOCKADDR_SLOT);
  readonly #len = new Uint8Array(4);
  readonly #lenView = new DataView(this.#len.buffer);
  readonly #value = new Uint8Array(4);
  readonly #valueView = new DataView(this.#value.buffer);
  readonly #want = new Uint8Array(SOCKADDR_SLOT);

  constructor(calls: DescriptorCalls) {
    this.#calls = calls;
  }

  /** The descriptor the next socket made will get, all else equal; -1 if unknown. */
  lowestFree(): number {
    const fd = this.#calls.dup(this.#calls.anchor());
    if (fd >= 0) this.#calls.close(fd);
    return fd;
  }

  /** The UDP socket bound to `address`:`port` (`family` 4 or 6), trying `expected` first; -1 if none. */
  find(family: 4 | 6, address: string, port: number, expected: number): number {
    writeSockaddr(new DataView(this.#want.buffer), 0, family, address, port);
    const want = readSockaddr(new DataView(this.#want.buffer), 0);
    const matches = (fd: number) => this.#matches(fd, family === 4 ? AF_INET : AF_INET6, want.address, want.port);
    if (expected >= 0) for (let fd = expected; fd <= expected + NEARBY; fd++) if (matches(fd)) return fd;
    for (const fd of this.#calls.listOpen()) if (matches(fd)) return fd;
    return -1;
  }

  #matches(fd: number, af: number, address: string, port: number): boolean {
    this.#lenView.setUint32(0, SOCKADDR_SLOT, true);
    if (this.#calls.getsockname(fd, this.#sa, this.#len) !== 0) return false;
    const view = new DataView(this.#sa.buffer);
    if (view.getUint16(0, true) !== af) return false;
    const bound = readSockaddr(view, 0);
    if (bound.port !== port || bound.address !== address) return false;
    return this.#option(fd, SO_TYPE) === SOCK_DGRAM && this.#option(fd, SO_PROTOCOL) === IPPROTO_UDP;
  }

  #option(fd: number, name: number): number {
    this.#lenView.setUint32(0, 4, true);
    if (this.#calls.getsockopt(fd, SOL_SOCKET, name, this.#value, this.#len) !== 0) return -1;
    return this.#valueView.getInt32(0, true);
  }
}
