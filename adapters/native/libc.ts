/**
 * The few libc calls the batch datagram path needs, as each runtime's FFI
 * binds them (koffi.ts, node_ffi.ts, deno_ffi.ts, bun_ffi.ts). Pointer
 * arguments are byte arrays whose memory is passed as is (no copy); structs
 * that point at other memory (msghdr, iovec) are built by datagrams.ts with
 * address(). Calls return what libc returns (-1 on failure, then errno()).
 */
export type FfiName = "koffi" | "node:ffi" | "Deno.dlopen" | "bun:ffi";

export interface Libc {
  readonly ffi: FfiName;
  /** Where `bytes` starts in memory, for pointers stored inside structs. */
  address(bytes: Uint8Array): bigint;
  /** errno as the last failed call left it. */
  errno(): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, sockaddr: Uint8Array, length: number): number;
  /** `length` is a 4-byte socklen_t, in and out. */
  getsockname(fd: number, sockaddr: Uint8Array, length: Uint8Array): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  sendmsg(fd: number, msghdr: Uint8Array, flags: number): number;
  sendmmsg(fd: number, mmsghdrs: Uint8Array, count: number, flags: number): number;
  /** Never with a timeout: MSG_DONTWAIT drains what is queued. */
  recvmmsg(fd: number, mmsghdrs: Uint8Array, count: number, flags: number): number;
  poll(pollfds: Uint8Array, count: number, timeoutMs: number): number;
  close(fd: number): number;
  /**
   * preadv2(2): `count` iovecs in `iov`, read from `offset`. Absent where the FFI could not
   * bind it (a libc older than glibc 2.26); then every file read goes to the runtime's pool.
   */
  preadv2?(fd: number, iov: Uint8Array, count: number, offset: number, flags: number): number;
  /**
   * Calls `onReady` each time `fd` has datagrams queued (and, while asked for, room to send),
   * until stop(): how a socket that no runtime socket object owns is read without polling
   * in a loop. Absent where the FFI has no way to wait off the main thread.
   */
  watch?(fd: number, onReady: (readable: boolean, writable: boolean) => void): Watch;
}

export interface Watch {
  /** Report writability too (a send met EAGAIN), or no longer. */
  writable(on: boolean): void;
  stop(): void;
}
