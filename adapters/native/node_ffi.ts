/**
 * libc through node:ffi (Node 26.1 and later, experimental, --experimental-ffi in
 * the releases that gate it). Not exercised on this project's Node 20: detect.ts
 * prefers koffi, and any mismatch with the running Node's API lands in detect()'s
 * reason instead of a crash. Signature field names changed during 26.x
 * ({ return, arguments } replaced { result, parameters }): both are tried.
 */
import type { Libc } from "./libc.ts";

interface NodeFfi {
  DynamicLibrary: new (path: string) => { getFunction(name: string, signature: Record<string, unknown>): (...args: unknown[]) => unknown };
  getRawPointer(source: Uint8Array): bigint;
  toBuffer(pointer: bigint, length: number, copy?: boolean): Uint8Array;
}

export async function nodeFfiLibc(): Promise<Libc> {
  const spec = "node:ffi"; // absent before Node 26: resolved only when asked for
  const ffi = (await import(spec)) as NodeFfi & { default?: NodeFfi };
  const api: NodeFfi = ffi.DynamicLibrary ? ffi : ffi.default!;
  const lib = new api.DynamicLibrary("libc.so.6");
  const fn = (name: string, result: string, args: string[]) => {
    try {
      return lib.getFunction(name, { return: result, arguments: args });
    } catch {
      return lib.getFunction(name, { result, parameters: args });
    }
  };
  const socket = fn("socket", "i32", ["i32", "i32", "i32"]);
  const bind = fn("bind", "i32", ["i32", "pointer", "u32"]);
  const getsockname = fn("getsockname", "i32", ["i32", "pointer", "pointer"]);
  const setsockopt = fn("setsockopt", "i32", ["i32", "i32", "i32", "pointer", "u32"]);
  const sendmsg = fn("sendmsg", "i64", ["i32", "pointer", "i32"]);
  const sendmmsg = fn("sendmmsg", "i32", ["i32", "pointer", "u32", "i32"]);
  const recvmmsg = fn("recvmmsg", "i32", ["i32", "pointer", "u32", "i32", "pointer"]);
  const poll = fn("poll", "i32", ["pointer", "u64", "i32"]);
  const close = fn("close", "i32", ["i32"]);
  const errnoLocation = fn("__errno_location", "pointer", []);
  const errnoAt = BigInt(errnoLocation() as bigint);
  return {
    ffi: "node:ffi",
    address: (bytes) => BigInt(api.getRawPointer(bytes)),
    errno: () => {
      const b = api.toBuffer(errnoAt, 4, false);
      return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
    },
    socket: (d, t, p) => Number(socket(d, t, p)),
    bind: (fd, sa, len) => Number(bind(fd, sa, len)),
    getsockname: (fd, sa, len) => Number(getsockname(fd, sa, len)),
    setsockopt: (fd, level, name, value, len) => Number(setsockopt(fd, level, name, value, len)),
    sendmsg: (fd, msg, flags) => Number(sendmsg(fd, msg, flags)),
    sendmmsg: (fd, vec, n, flags) => Number(sendmmsg(fd, vec, n, flags)),
    recvmmsg: (fd, vec, n, flags) => Number(recvmmsg(fd, vec, n, flags, null)),
    poll: (fds, n, timeout) => Number(poll(fds, BigInt(n), timeout)),
    close: (fd) => Number(close(fd)),
  };
}
