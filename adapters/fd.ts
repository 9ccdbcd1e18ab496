/**
 * node:fs's callback API on numeric file descriptors, as promises: what serveDir's
 * read side uses instead of node:fs/promises FileHandles. Every transfer keeps
 * its file open while it waits for the client, and a FileHandle is a heavier
 * object per open file (BENCHMARKS.md, section 5, has the memory it costs).
 */
import { close, fstat, open, read, readv, type Stats } from "node:fs";

const settle = <T>(ok: (value: T) => void, no: (error: Error) => void) => (error: Error | null, value: T) => (error ? no(error) : ok(value));

export const openFd = (path: string, flags: number): Promise<number> =>
  new Promise((ok, no) => open(path, flags, settle(ok, no)));

export const fstatFd = (fd: number): Promise<Stats> => new Promise((ok, no) => fstat(fd, settle(ok, no)));

/** Bytes read into `buffer[offset..offset+length)` from `position`; 0 at the end of the file. */
export const readFd = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> =>
  new Promise((ok, no) => read(fd, buffer, offset, length, position, settle(ok, no)));

/** Bytes read into the buffers in turn from `position`; 0 at the end of the file. */
export const readvFd = (fd: number, buffers: Uint8Array[], position: number): Promise<number> =>
  new Promise((ok, no) => readv(fd, buffers, position, settle(ok, no)));

export const closeFd = (fd: number): Promise<void> => new Promise((ok, no) => close(fd, (error) => (error ? no(error) : ok())));
