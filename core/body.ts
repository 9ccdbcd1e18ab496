/**
 * What a read handler returns, turned into a {@link BlockSource}: a thing that
 * fills DATA payloads in linear memory, one window at a time, so that a stream
 * of any length is served with flat memory. And the upload side: the stream a
 * write handler reads.
 */
import { NetasciiEncoder, memory } from "./codec.ts";
import { allocate, release } from "./arena.ts";
import { TftpError } from "./errors.ts";
import { ErrorCode } from "./packet.ts";

/** The payload areas of some consecutive DATA blocks, each exactly blksize bytes. */
export interface FillTarget {
  readonly count: number;
  /** Block i's payload area; get it again after an await (memory may have grown). */
  view(i: number): Uint8Array;
  /** Block i's payload address in linear memory. */
  offset(i: number): number;
}

/**
 * A body being served. `fill` fills the target's blocks in order, each one
 * completely, until the data ends, and returns the number of bytes written:
 * less than count x blksize means the end. Sources that have the bytes at hand
 * return a number; the others a promise. Fills never overlap: the next starts
 * after the previous one settled (a transfer has one ring and one reader).
 */
export interface BlockSource {
  /** Total bytes, when known in advance (answered as tsize). */
  readonly size?: number;
  /**
   * True when fill() hands views to an operation that writes into them after
   * an await (a positioned file read): the ring then stays reserved until the
   * fill settles. Sources that take a fresh view after every await leave it unset.
   */
  readonly capturesViews?: boolean;
  fill(target: FillTarget): number | Promise<number>;
  close(): void | Promise<void>;
}

/** Everything a read handler may return. */
export type ReadBody =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>
  | Response
  | BlockSource
  | { body: ReadBody; size?: number }
  | null
  | undefined;

const utf8 = new TextEncoder();

class BytesSource implements BlockSource {
  #bytes: Uint8Array;
  #at = 0;
  readonly size: number;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.size = bytes.length;
  }
  fill(target: FillTarget): number {
    let total = 0;
    for (let i = 0; i < target.count; i++) {
      const view = target.view(i);
      const n = Math.min(view.length, this.#bytes.length - this.#at);
      view.set(this.#bytes.subarray(this.#at, this.#at + n));
      this.#at += n;
      total += n;
      if (n < view.length) break;
    }
    return total;
  }
  close(): void {}
}

function chunkBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return utf8.encode(chunk);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`a body chunk must be a Uint8Array or a string, not ${typeof chunk}`);
}

/** An iterator's or a stream reader's result: the two differ in whether `value` is there when done. */
type NextChunk = () => Promise<{ done?: boolean; value?: unknown }> | { done?: boolean; value?: unknown };

/** Pulls chunks only as blocks need them: one window ahead at most. */
class ChunkSource implements BlockSource {
  #next: NextChunk;
  #stop: () => unknown;
  #pending: Uint8Array = new Uint8Array(0);
  #done = false;
  readonly size?: number;
  constructor(next: NextChunk, stop: () => unknown, size?: number) {
    this.#next = next;
    this.#stop = stop;
    this.size = size;
  }
  async fill(target: FillTarget): Promise<number> {
    let total = 0;
    for (let i = 0; i < target.count; i++) {
      let off = 0;
      let full = false;
      while (!full) {
        if (this.#pending.length === 0) {
          if (this.#done) break;
          const r = await this.#next();
          if (r.done) {
            this.#done = true;
            break;
          }
          this.#pending = chunkBytes(r.value);
          continue;
        }
        const view = target.view(i); // fresh after any await
        const n = Math.min(view.length - off, this.#pending.length);
        view.set(this.#pending.subarray(0, n), off);
        this.#pending = this.#pending.subarray(n);
        off += n;
        full = off === view.length;
      }
      total += off;
      if (!full) break;
    }
    return total;
  }
  close(): void {
    this.#done = true;
    try {
      Promise.resolve(this.#stop()).catch(() => {});
    } catch { /* a stream that refuses to stop is dropped all the same */ }
  }
}

function streamSource(stream: ReadableStream<Uint8Array>, size?: number): BlockSource {
  const reader = stream.getReader();
  return new ChunkSource(() => reader.read(), () => reader.cancel(), size);
}

function isBlockSource(v: object): v is BlockSource {
  return typeof (v as BlockSource).fill === "function" && typeof (v as BlockSource).close === "function";
}

function fromResponse(res: Response): BlockSource {
  if (!res.ok) {
    res.body?.cancel().catch(() => {});
    if (res.status === 404 || res.status === 410) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    if (res.status === 401 || res.status === 403) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "access violation");
    throw new TftpError(ErrorCode.NOT_DEFINED, `upstream answered ${res.status}`);
  }
  // Content-Length is the size on the wire: only trust it when the body is not re-encoded.
  const length = res.headers.get("content-length");
  const size = length !== null && !res.headers.has("content-encoding") && /^[0-9]+$/.test(length) ? Number(length) : undefined;
  if (!res.body) return new BytesSource(new Uint8Array(0));
  return size === undefined ? streamSource(res.body) : sizeChecked(streamSource(res.body, size), size);
}

/**
 * A source whose size was declared apart from its bytes (a handler's `{ body, size }`,
 * an upstream's Content-Length). That size is the tsize the client is told, and boot
 * clients size their buffers by it: a body that turns out longer or shorter fails the
 * transfer (ERROR 0, and the operator is told why) instead of sending something else.
 */
function sizeChecked(inner: BlockSource, size: number): BlockSource {
  let total = 0;
  const check = (n: number, target: FillTarget): number => {
    total += n;
    const asked = target.count > 0 ? target.count * target.view(0).length : 0;
    if (total > size) throw new Error(`the body is longer than its declared size of ${size} bytes`);
    if (n < asked && total < size) throw new Error(`the body ended at ${total} bytes, short of its declared size of ${size}`);
    return n;
  };
  return {
    size,
    capturesViews: inner.capturesViews,
    fill(target) {
      const n = inner.fill(target);
      return typeof n === "number" ? check(n, target) : n.then((m) => check(m, target));
    },
    close: () => inner.close(),
  };
}

/**
 * Turns a handler's result into a source; null for "no such file".
 * Throws TypeError for a value that is no body at all.
 */
export function toSource(body: ReadBody): BlockSource | null {
  if (body === null || body === undefined) return null;
  if (typeof body === "string") return new BytesSource(utf8.encode(body));
  if (body instanceof Uint8Array) return new BytesSource(body);
  if (body instanceof ArrayBuffer) return new BytesSource(new Uint8Array(body));
  if (ArrayBuffer.isView(body)) return new BytesSource(chunkBytes(body));
  if (typeof Blob !== "undefined" && body instanceof Blob) return streamSource(body.stream(), body.size);
  if (typeof Response !== "undefined" && body instanceof Response) return fromResponse(body);
  if (typeof ReadableStream !== "undefined" && body instanceof ReadableStream) return streamSource(body);
  if (typeof body === "object") {
    if (isBlockSource(body)) return body;
    if ("body" in body) {
      const sized = body as { body: ReadBody; size?: number };
      const inner = toSource(sized.body);
      if (inner === null || sized.size === undefined) return inner;
      return sizeChecked(inner, sized.size);
    }
    if (Symbol.asyncIterator in body) {
      const it = (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      return new ChunkSource(() => it.next(), () => it.return?.());
    }
    if (Symbol.iterator in body) {
      const it = (body as Iterable<unknown>)[Symbol.iterator]();
      return new ChunkSource(() => it.next(), () => it.return?.());
    }
  }
  throw new TypeError(`a read handler returned ${typeof body}, which is not a body`);
}

const STAGE = 16 * 1024;

/**
 * Serves a source in netascii: LF becomes CR LF and CR becomes CR NUL, so the
 * blocks on the wire hold more than the source gave; a pair may straddle two
 * blocks. Raw bytes are staged in linear memory and converted by the WASM codec
 * straight into the DATA payloads.
 */
export class NetasciiSource implements BlockSource {
  #inner: BlockSource;
  #encoder = new NetasciiEncoder();
  #stage: number;
  #start = 0;
  #end = 0;
  #innerDone = false;
  #stageTarget: FillTarget;
  /** The inner fill writing into the staging area, if any: close() frees it only after. */
  #innerFill: Promise<number> | null = null;
  #closed = false;

  /** Throws when linear memory is exhausted. */
  constructor(inner: BlockSource) {
    this.#inner = inner;
    this.#stage = allocate(STAGE);
    if (this.#stage === 0) throw new TftpError(ErrorCode.DISK_FULL, "server out of memory");
    const stage = this.#stage;
    this.#stageTarget = { count: 1, view: () => memory().subarray(stage, stage + STAGE), offset: () => stage };
  }

  async fill(target: FillTarget): Promise<number> {
    let total = 0;
    for (let i = 0; i < target.count; i++) {
      const cap = target.view(i).length;
      let off = 0;
      while (off < cap) {
        if (this.#start === this.#end && !this.#innerDone) {
          if (this.#closed) break;
          const pending = Promise.resolve(this.#inner.fill(this.#stageTarget));
          this.#innerFill = pending;
          let n: number;
          try {
            n = await pending;
          } finally {
            this.#innerFill = null;
            if (this.#closed) this.#freeStage();
          }
          if (this.#closed) break;
          this.#start = 0;
          this.#end = n;
          if (n < STAGE) this.#innerDone = true;
        }
        if (this.#start === this.#end && !this.#encoder.pending) break;
        const r = this.#encoder.encodePtr(this.#stage + this.#start, this.#end - this.#start, target.offset(i) + off, cap - off);
        this.#start += r.read;
        off += r.written;
      }
      total += off;
      if (off < cap) break;
    }
    return total;
  }

  #freeStage(): void {
    if (this.#stage !== 0) release(this.#stage);
    this.#stage = 0;
  }

  close(): void | Promise<void> {
    this.#closed = true;
    if (this.#innerFill === null) this.#freeStage(); // else when the inner fill settles
    return this.#inner.close();
  }
}

/**
 * Payloads gathered into one chunk: 16 DATA blocks, or as many as fit in 64 KiB
 * when blocks are larger (just one above 32 KiB): a chunk per packet would cost an
 * allocation and a read() promise per packet (BENCHMARKS.md, section 4, has the
 * CPU this saves).
 */
const CHUNK_BLOCKS = 16;
const CHUNK_MAX = 64 * 1024;

/**
 * The stream a write handler reads. Payloads are copied into chunks of up to
 * 16 blocks (the last chunk comes at the end of the upload); chunks are queued
 * up to `highWaterMark` bytes; past that the receiving session holds its ACK
 * until the handler reads (flow control through the client's own lock-step).
 */
export class UploadStream {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #onDrain: () => void = () => {};
  #closed = false;
  /** The chunk being gathered, and how much of it is filled. */
  #chunk: Uint8Array | null = null;
  #filled = 0;
  #abort = new AbortController();
  /** True once the handler cancelled the stream (it wants no more data). */
  cancelled = false;

  constructor(highWaterMark = 1 << 20) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.#controller = c;
        },
        pull: () => this.#onDrain(),
        cancel: () => {
          this.cancelled = true;
          this.#closed = true;
          this.#chunk = null;
          this.#onDrain();
        },
      },
      { highWaterMark, size: (chunk) => chunk.byteLength },
    );
  }

  /**
   * Copies a payload in (the caller may reuse its buffer at once); returns false
   * when the consumer is behind (hold the ACK).
   */
  push(payload: Uint8Array): boolean {
    if (this.#closed || payload.length === 0) return this.wantsMore;
    if (this.#chunk !== null && this.#filled + payload.length > this.#chunk.length) this.#flush();
    if (this.#chunk === null) {
      const blocks = Math.min(CHUNK_BLOCKS, Math.floor(CHUNK_MAX / payload.length));
      if (blocks <= 1) {
        this.#controller.enqueue(payload.slice()); // blksize above 32 KiB: a block is a chunk
        return this.wantsMore;
      }
      this.#chunk = new Uint8Array(blocks * payload.length);
    }
    this.#chunk.set(payload, this.#filled);
    this.#filled += payload.length;
    if (this.#filled === this.#chunk.length) this.#flush();
    return this.wantsMore;
  }

  #flush(): void {
    if (this.#chunk === null) return;
    const chunk = this.#chunk;
    const n = this.#filled;
    // A short tail gets a buffer of its size: the handler may keep what it reads.
    if (n > 0) this.#controller.enqueue(n * 2 < chunk.length ? chunk.slice(0, n) : chunk.subarray(0, n));
    this.#chunk = null;
    this.#filled = 0;
  }

  /** Calls fn when the consumer wants more. */
  onDrain(fn: () => void): void {
    this.#onDrain = fn;
  }

  get wantsMore(): boolean {
    return this.#closed || (this.#controller.desiredSize ?? 1) > 0;
  }

  /** The handler needs no more: drop what still arrives. */
  discard(): void {
    this.#closed = true;
    this.#chunk = null;
  }

  end(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#controller.close();
  }

  /** The handler's `signal`: aborted by {@link fail}. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /**
   * The upload cannot succeed: the signal is aborted (even after the end, when
   * the handler may be committing the bytes) and a reader still reading gets `reason`.
   */
  fail(reason: Error): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(reason);
    if (this.#closed) return;
    this.#closed = true;
    this.#chunk = null;
    this.#controller.error(reason);
  }
}
