/**
 * serveDir: a folder served over TFTP, safely. Works on node:fs/promises, which
 * Node, Deno and Bun all provide.
 *
 * Nothing outside the root is read or written: names with NUL or backslashes
 * and names with a `..` segment are refused; a leading `/` means the root (as
 * tftpd-hpa's -s does); symbolic links are followed only while they stay
 * inside the root; only regular files are served or replaced. For Windows
 * clients, backslashes may be taken as separators and names found regardless
 * of case: both only change which entry inside the root a name means, and the
 * checks above apply to the result. Uploads go to a
 * temporary file beside the target and are renamed over it once complete, so a
 * failed or abandoned upload leaves nothing behind and readers never see half
 * a file.
 */
import { constants, type FileHandle, lstat, open, readdir, realpath, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, sep } from "node:path";
import type { BlockSource, FillTarget } from "../core/body.ts";
import type { ReadHandler, WriteRoute } from "../core/routes.ts";
import { TftpError } from "../core/errors.ts";
import { ErrorCode } from "../core/packet.ts";
import { closeFd, fstatFd, openFd, readFd, readvFd } from "./fd.ts";
import { borrow, giveBack } from "./staging_pool.ts";
import { cachedRead, cachedReadStats } from "./cached_read.ts";

export interface ServeDirOptions {
  /** Accept uploads (create and replace files). Default false: read-only. */
  write?: boolean;
  /**
   * Take `\` as a path separator, as Windows boot clients send names (`boot\x86\wdsnbp.com`,
   * `\Boot\BCD`); a leading one means the root, like a leading `/`. Default false: such names are refused.
   */
  backslash?: boolean;
  /**
   * Find each path component regardless of the case of ASCII letters (WDS asks `Boot\BCD` for
   * `boot/bcd`), as dnsmasq's --tftp-lowercase or a case-insensitive disk would. An exact match
   * wins; a name that matches several entries only case-insensitively is refused (ERROR 2,
   * "ambiguous file name"): which one a client meant is not knowable. Uploads replace the entry
   * found this way; a new file takes the client's spelling. Default false.
   */
  ignoreCase?: boolean;
}

export interface ServedDir {
  read: ReadHandler;
  /** Present only with `write: true`. */
  write?: WriteRoute;
}

/** Longest name accepted; real file systems stop at 4096 too. */
const MAX_NAME = 1024;

function fsError(error: unknown): TftpError {
  const code = (error as { code?: string }).code;
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
    case "ENAMETOOLONG":
      return new TftpError(ErrorCode.ACCESS_VIOLATION, "file name too long");
    case "EACCES":
    case "EPERM":
    case "ELOOP":
    case "EISDIR":
    case "EROFS":
      return new TftpError(ErrorCode.ACCESS_VIOLATION, "access violation");
    case "ENOSPC":
    case "EDQUOT":
    case "EFBIG":
      return new TftpError(ErrorCode.DISK_FULL, "disk full or allocation exceeded");
    case "EMFILE":
    case "ENFILE":
      // Every descriptor is held by live transfers: the server is full, not broken (raise `ulimit -n`).
      return new TftpError(ErrorCode.NOT_DEFINED, "server busy: too many open files");
  }
  throw error; // unexpected: becomes ERROR 0 and is logged
}

/**
 * The name's path segments under the root, or a refusal. U+FFFD is refused too: it
 * stands for bytes that were not UTF-8 (the codec decodes names as UTF-8), so two
 * different names would map to one file, and an upload of one would replace the other.
 */
function segments(filename: string, backslash: boolean): string[] {
  if (filename.length > MAX_NAME || filename.includes("\0") || (!backslash && filename.includes("\\")) || filename.includes("\uFFFD")) {
    throw new TftpError(ErrorCode.ACCESS_VIOLATION, "illegal file name");
  }
  const parts = (backslash ? filename.replaceAll("\\", "/") : filename).split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "illegal file name");
  return parts;
}

/**
 * Deno's node:fs readv (callback or FileHandle) never returns when the file ends
 * before the buffers are full (seen with Deno 2.9): there, one read into a staging
 * buffer is used, borrowed for that fill only (adapters/staging_pool.ts).
 */
const READV_OK = (globalThis as { Deno?: unknown }).Deno === undefined;

/**
 * The part of the target's blocks from byte `skip` to byte `end` (of the blocks laid end
 * to end), as views: what one read fills.
 */
function blockViews(target: FillTarget, skip: number, end: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  let room = end - skip;
  for (let i = 0; i < target.count && room > 0; i++) {
    const v = target.view(i);
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    const part = v.subarray(skip, skip + Math.min(v.length - skip, room));
    skip = 0;
    room -= part.length;
    views.push(part);
  }
  return views;
}

/**
 * A file read straight into the DATA payloads. Exactly the size found at open is
 * served (the tsize announced), even if the file grows. Held as a plain descriptor
 * (adapters/fd.ts): stalled transfers keep it open. A fill first takes what the
 * page cache holds, on the spot, where the runtime has such a read
 * (adapters/cached_read.ts): a fill it answers whole is a number, not a promise;
 * the rest is one readv per fill on the runtime's thread pool.
 */
class FileSource implements BlockSource {
  #fd: number;
  #position = 0;
  /** The fill under way, if any: the descriptor is closed only after it settles. */
  #reading: Promise<number> | null = null;
  #closed: Promise<void> | null = null;
  /** Until the file's file system refuses reads that do not wait (then every read goes to the pool). */
  #cached = true;
  readonly size: number;
  /** readv writes into the views after an await (a read from the cache writes before fill() returns). */
  readonly capturesViews = READV_OK;
  constructor(fd: number, size: number) {
    this.#fd = fd;
    this.size = size;
  }
  fill(target: FillTarget): number | Promise<number> {
    if (this.#closed) return Promise.reject(new Error("file closed"));
    const want = Math.min(this.size - this.#position, target.count * (target.count > 0 ? target.view(0).length : 0));
    if (want <= 0) return 0;
    let done = 0;
    const read = this.#cached ? cachedRead() : null;
    if (read !== null) {
      done = read(this.#fd, blockViews(target, 0, want), this.#position);
      if (done < 0) {
        this.#cached = false;
        done = 0;
      } else if (done > 0) {
        cachedReadStats.reads++;
        cachedReadStats.bytes += done;
      }
      if (done === want) {
        this.#position += done;
        return done;
      }
      cachedReadStats.fallbacks++;
    }
    const reading = this.#fill(target, want, done);
    this.#reading = reading;
    return reading;
  }
  /** Reads bytes `done` to `want` of the fill (those before came from the cache). */
  async #fill(target: FillTarget, want: number, done: number): Promise<number> {
    try {
      const total = READV_OK ? await this.#readv(target, want, done) : await this.#readStaged(target, want, done);
      this.#position += total;
      return total;
    } finally {
      // Settled: nothing for close() to wait for, and no promise kept while the client stalls.
      // (This runs after an await, so after fill() noted the promise.)
      this.#reading = null;
    }
  }
  async #readv(target: FillTarget, want: number, done: number): Promise<number> {
    let total = done;
    while (total < want) {
      // Views are taken afresh on each pass: the memory may have grown during the await.
      // Short reads happen (more than 1024 buffers, signals, a file that shrank): read the rest.
      const n = await readvFd(this.#fd, blockViews(target, total, want), this.#position + total);
      if (n === 0) break;
      total += n;
    }
    return total;
  }
  async #readStaged(target: FillTarget, want: number, done: number): Promise<number> {
    const staging = borrow(want - done);
    try {
      let got = 0;
      while (done + got < want) {
        const n = await readFd(this.#fd, staging, got, want - done - got, this.#position + done + got);
        if (n === 0) break;
        got += n;
      }
      let at = 0;
      for (const v of blockViews(target, done, done + got)) { // fresh after the await
        v.set(staging.subarray(at, at + v.length));
        at += v.length;
      }
      return done + got;
    } finally {
      giveBack(staging);
    }
  }
  /**
   * Once, and after the fill under way has settled (fills never overlap): a
   * descriptor number closed under a pending read could be reused by the next
   * open, and that read, or a second close, would then act on another file.
   * (FileHandles did not protect this: Node's lets the read in flight finish but
   * fails the fill's next one, Bun's does not wait at all.)
   */
  close(): Promise<void> {
    // The fill's own outcome went to its caller: here it only has to be over.
    return (this.#closed ??= (this.#reading ?? Promise.resolve(0)).catch(() => 0).then(() => closeFd(this.#fd)));
  }
}

/** Collects upload chunks into large writes: one write per packet would be a syscall per 512 bytes. */
async function writeAll(fh: FileHandle, body: ReadableStream<Uint8Array>): Promise<void> {
  const LIMIT = 256 * 1024;
  let batch: Uint8Array[] = [];
  let size = 0;
  const flush = async () => {
    if (size === 0) return;
    const buf = new Uint8Array(size);
    let at = 0;
    for (const c of batch) {
      buf.set(c, at);
      at += c.length;
    }
    batch = [];
    size = 0;
    // A short write (a disk filling up) must not pass for a complete one.
    for (let at = 0; at < buf.length; ) {
      const { bytesWritten } = await fh.write(buf, at, buf.length - at);
      if (bytesWritten <= 0) throw Object.assign(new Error("no space left"), { code: "ENOSPC" });
      at += bytesWritten;
    }
  };
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    batch.push(value);
    size += value.length;
    if (size >= LIMIT) await flush();
  }
  await flush();
}

/** ASCII letters only: other scripts' case rules (ß, the Kelvin sign K) would make look-alikes meet. */
const fold = (name: string) => name.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw fsError(error);
  }
}

/**
 * The entry of `dir` that `name` means: itself if it exists, else the one entry equal to it
 * but for ASCII case, or null if none is. Several are refused: which one was meant is unknown.
 */
async function caseless(dir: string, name: string): Promise<string | null> {
  if (await exists(join(dir, name))) return name;
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw fsError(error);
  }
  const want = fold(name);
  const hits = entries.filter((e) => fold(e) === want);
  if (hits.length > 1) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "ambiguous file name");
  return hits[0] ?? null;
}

export function serveDir(root: string, options: ServeDirOptions = {}): ServedDir {
  let rootReal: Promise<string> | null = null;
  const realRoot = () => (rootReal ??= realpath(root));
  const backslash = options.backslash ?? false;
  const ignoreCase = options.ignoreCase ?? false;

  const inside = (real: string, top: string) => real === top || real.startsWith(top.endsWith(sep) ? top : top + sep);

  /**
   * The components as they are spelled on disk. Each directory is resolved and checked to be
   * inside the root before it is listed: nothing outside is ever read, not even a listing.
   */
  async function spelled(top: string, parts: string[]): Promise<string[]> {
    if (!ignoreCase) return parts;
    const out: string[] = [];
    let dir = top;
    for (let i = 0; i < parts.length; i++) {
      const name = await caseless(dir, parts[i]);
      if (name === null) throw new TftpError(ErrorCode.FILE_NOT_FOUND, "file not found");
      out.push(name);
      if (i === parts.length - 1) break;
      try {
        dir = await realpath(join(dir, name));
      } catch (error) {
        throw fsError(error);
      }
      if (!inside(dir, top)) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "access violation");
    }
    return out;
  }

  /** The real path of an existing entry, if it lies inside the root. */
  async function resolveExisting(parts: string[]): Promise<string> {
    const top = await realRoot();
    const full = join(top, ...(await spelled(top, parts)));
    let real: string;
    try {
      real = await realpath(full);
    } catch (error) {
      throw fsError(error);
    }
    if (!inside(real, top)) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "access violation");
    return real;
  }

  const read: ReadHandler = async ({ filename }) => {
    const real = await resolveExisting(segments(filename, backslash));
    let fd: number;
    try {
      // Look before opening: opening a device or a FIFO can block or have effects.
      if (!(await lstat(real)).isFile()) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "not a regular file");
      fd = await openFd(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      throw error instanceof TftpError ? error : fsError(error);
    }
    try {
      const st = await fstatFd(fd); // what was opened, not what the name pointed at a moment ago
      if (!st.isFile()) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "not a regular file");
      return new FileSource(fd, st.size);
    } catch (error) {
      await closeFd(fd).catch(() => {});
      throw error instanceof TftpError ? error : fsError(error);
    }
  };

  if (!options.write) return { read };

  /** Where an upload of `filename` lands: a real directory inside the root, and a name in it. */
  async function target(filename: string): Promise<string> {
    const parts = segments(filename, backslash);
    const dir = parts.length > 1 ? await resolveExisting(parts.slice(0, -1)) : await realRoot();
    // With ignoreCase, an existing file of another spelling is the one replaced.
    const name = (ignoreCase ? await caseless(dir, parts[parts.length - 1]) : null) ?? parts[parts.length - 1];
    const path = join(dir, name);
    try {
      const st = await lstat(path);
      // Replace regular files only; a symlink in the way could point anywhere.
      if (!st.isFile()) throw new TftpError(ErrorCode.ACCESS_VIOLATION, "access violation");
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw error instanceof TftpError ? error : fsError(error);
    }
    return path;
  }

  const write: WriteRoute = {
    accept: async ({ filename }) => {
      await target(filename);
      return true;
    },
    handle: async ({ filename, body, signal }) => {
      const path = await target(filename);
      // The name's start only: the full name plus 51 bytes would not fit a file system's 255.
      const temp = join(dirname(path), `.${[...basename(path)].slice(0, 32).join("")}.${crypto.randomUUID()}.emmer-upload`);
      let fh: FileHandle;
      try {
        fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
      } catch (error) {
        await body.cancel().catch(() => {});
        throw fsError(error);
      }
      try {
        await writeAll(fh, body);
        await fh.sync();
        await fh.close();
        // The client may have been told the upload failed meanwhile (a slow disk past the
        // handler deadline): then the file must not appear.
        if (signal?.aborted) throw signal.reason ?? new Error("upload abandoned");
        await rename(temp, path);
      } catch (error) {
        await fh.close().catch(() => {});
        await unlink(temp).catch(() => {});
        if (error instanceof TftpError) throw error;
        if ((error as { code?: string }).code) throw fsError(error);
        throw error;
      }
    },
  };
  return { read, write };
}
