/**
 * What the core needs from a runtime: UDP sockets, a clock and one kind of
 * timer. adapters/node.ts, adapters/deno.ts and adapters/bun.ts implement it;
 * tests implement it with a fake clock and in-memory datagrams.
 */

/** Called with each datagram; `data` may be reused by the adapter after the call returns. */
export type MessageHandler = (data: Uint8Array, address: string, port: number) => void;

export interface DatagramTransport {
  /** The bound local address and port. */
  readonly address: string;
  readonly port: number;
  /**
   * Sends one datagram. `data` must stay untouched until `done` is called: the
   * adapter may hand the very bytes to the kernel later (Node and Deno do not copy).
   * It is a view of WebAssembly memory, which a memory.grow detaches: an adapter that
   * reads it after this call returns (a queue of its own) copies it first.
   * A send that fails is reported through `done` as well; TFTP recovers by retransmission.
   */
  send(data: Uint8Array, port: number, address: string, done: () => void): void;
  /**
   * Optional: several datagrams to one peer in one call (a window), where the
   * runtime has a batch send. `done` is called once per datagram.
   */
  sendMany?(datagrams: Uint8Array[], port: number, address: string, done: () => void): void;
  close(): void;
}

export interface Runtime {
  /**
   * Binds a UDP socket. Port 0 picks a free port. Rejects when the address is taken.
   * `maxDatagram`: the largest datagram this socket needs to receive whole; an adapter
   * that keeps a receive buffer per socket (Deno) sizes it so, and longer ones arrive cut
   * at that length. Default: 65,536.
   */
  bind(hostname: string, port: number, onMessage: MessageHandler, maxDatagram?: number): Promise<DatagramTransport>;
  /**
   * Optional: takes a UDP socket that is bound already, by file descriptor (socket
   * activation). Without it, the `fd` option is refused.
   */
  bindFd?(fd: number, onMessage: MessageHandler): Promise<DatagramTransport>;
  /** Milliseconds, monotonic enough for timeouts. */
  now(): number;
  /**
   * Optional: how datagrams leave ("gso": a window per send call; "per-datagram": a call each), and
   * why (the FFI behind it, or why there is none): the CLI's --verbose shows it.
   */
  readonly datagramPath?: { path: string; detail: string };
  /** A one-shot timer: a driver keeps one, at its endpoint's next deadline. */
  after(ms: number, fn: () => void): { stop(): void };
}
