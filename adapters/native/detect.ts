/**
 * Which batch datagram calls work here, and why not, without ever throwing:
 * the FFI is found for the running runtime (Node: koffi, else node:ffi; Deno:
 * Deno.dlopen with the ffi permission; Bun: bun:ffi), then each call is tried
 * for real on a 127.0.0.1 socket that sends to itself. A caller that gets
 * `native: null` keeps the runtime's per-datagram sockets.
 */
import process from "node:process";
import { SUPPORTED_ARCHES } from "./abi.ts";
import { BatchDatagrams, errnoName, ReceiveBatch } from "./datagrams.ts";
import type { FfiName, Libc } from "./libc.ts";
import { adoptSocket } from "./handoff.ts";
import { probeNowaitRead } from "./nowait_read.ts";
import { type CachedRead, installCachedRead } from "../cached_read.ts";
import { runtimeName, type RuntimeName } from "../runtime.ts";

export interface Capability {
  ok: boolean;
  /** What was tried and what came of it (why not, when not). */
  why: string;
}

export interface Detection {
  runtime: RuntimeName;
  /** The FFI in use, or null with `reason` saying why there is none. */
  ffi: FfiName | null;
  reason: string | null;
  /** One send of a window cut into datagrams by the kernel (UDP_SEGMENT). */
  gso: Capability;
  /** Datagrams to several destinations in one call. */
  sendmmsg: Capability;
  /** A readable socket drained in one call. */
  recvmmsg: Capability;
  /** The module itself waits for readability (no runtime socket needed). */
  watch: Capability;
  /** The runtime's node:dgram takes the module's socket (bind({ fd })). */
  adopt: Capability;
  /** File reads the page cache answers on the event loop (preadv2 with RWF_NOWAIT): serveDir uses them. */
  cachedRead: Capability;
}

export interface DetectOptions {
  /**
   * Pretend there is no FFI, with this reason (also set by EMMER_NATIVE=off in the
   * environment): the per-datagram path, as on a platform without one.
   */
  disable?: string;
}

const no = (why: string): Capability => ({ ok: false, why });
const yes = (why: string): Capability => ({ ok: true, why });

function envDisabled(): string | undefined {
  try {
    return process.env.EMMER_NATIVE === "off" ? "EMMER_NATIVE=off" : undefined;
  } catch {
    return undefined; // Deno without --allow-env: nothing was asked for
  }
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The runtime's FFI bound to libc, or why there is none. */
async function loadLibc(runtime: RuntimeName): Promise<Libc | string> {
  if (process.platform !== "linux") return `not Linux (${process.platform}): UDP_SEGMENT, sendmmsg and recvmmsg are Linux calls`;
  if (!SUPPORTED_ARCHES.includes(process.arch)) return `struct layouts not checked on ${process.arch} (only ${SUPPORTED_ARCHES.join(", ")})`;
  if (runtime === "deno") {
    const D = (globalThis as unknown as { Deno: { permissions: { querySync(d: { name: string }): { state: string } } } }).Deno;
    let state = "unknown";
    try {
      state = D.permissions.querySync({ name: "ffi" }).state;
    } catch { /* an old Deno: dlopen below says whether it is allowed */ }
    if (state !== "granted" && state !== "unknown") return "Deno has no ffi permission (run with --allow-ffi or -A)";
    try {
      return (await import("./deno_ffi.ts")).denoLibc();
    } catch (error) {
      return `Deno.dlopen(libc.so.6) failed: ${message(error)}`;
    }
  }
  if (runtime === "bun") {
    try {
      return await (await import("./bun_ffi.ts")).bunLibc();
    } catch (error) {
      return `bun:ffi failed: ${message(error)}`;
    }
  }
  const reasons: string[] = [];
  try {
    return (await import("./koffi.ts")).koffiLibc();
  } catch (error) {
    reasons.push(`koffi (optional dependency) not loadable: ${message(error).split("\n")[0]}`);
  }
  try {
    return await (await import("./node_ffi.ts")).nodeFfiLibc();
  } catch (error) {
    reasons.push(`node:ffi not available (Node 26.1+): ${message(error).split("\n")[0]}`);
  }
  return reasons.join("; ");
}

/** Tries sendmmsg, recvmmsg and a GSO send on one loopback socket talking to itself. */
function probe(native: BatchDatagrams): Pick<Detection, "gso" | "sendmmsg" | "recvmmsg"> {
  let s;
  try {
    s = native.openUdp("127.0.0.1", 0);
  } catch (error) {
    const why = `no 127.0.0.1 socket to try it on: ${message(error)}`;
    return { gso: no(why), sendmmsg: no(why), recvmmsg: no(why) };
  }
  const batch = new ReceiveBatch(8, 64);
  const me = { address: "127.0.0.1", port: s.port };
  const drain = () => (native.waitReadable(s.fd, 200) ? native.recvmmsg(s.fd, batch) : { received: 0, errno: 0 });
  try {
    const m = native.sendmmsg(s.fd, [{ data: new Uint8Array([1, 2]), ...me }, { data: new Uint8Array([3]), ...me }]);
    const sendmmsg = m.errno === 0 && m.sent === 2 ? yes("2 datagrams in one call") : no(`sendmmsg sent ${m.sent} of 2: ${errnoName(m.errno)}`);
    const r = drain();
    let got = r.received;
    // Loopback delivers at once, but a second look costs nothing if the first came early.
    if (r.errno === 0 && got === 1) got += drain().received;
    const recvmmsg = r.errno !== 0
      ? no(`recvmmsg: ${errnoName(r.errno)}`)
      : got === 2 || (!sendmmsg.ok && got > 0) ? yes(`drained ${got} datagrams in one call`) : no(`recvmmsg found ${got} datagrams`);
    const on = native.enableGso(s.fd, 4);
    let gso: Capability;
    if (!on.ok) gso = no(`the kernel refuses UDP_SEGMENT: ${errnoName(on.errno)}`);
    else {
      const g = native.sendGso(s.fd, new Uint8Array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3]), 4, me.address, me.port);
      if (g.errno !== 0) gso = no(`GSO send refused: ${errnoName(g.errno)}`);
      else {
        const sizes: number[] = [];
        for (let tries = 0; tries < 3 && sizes.length < 3; tries++) {
          const d = drain();
          for (let i = 0; i < d.received; i++) sizes.push(batch.lengths[i]);
        }
        gso = sizes.join() === "4,4,2" ? yes("10 bytes in segments of 4 arrived as 4, 4, 2") : no(`GSO send arrived as [${sizes.join(", ")}], not [4, 4, 2]`);
      }
    }
    return { gso, sendmmsg, recvmmsg };
  } finally {
    native.close(s.fd);
  }
}

async function probeAdopt(native: BatchDatagrams): Promise<Capability> {
  let s;
  try {
    s = native.openUdp("127.0.0.1", 0);
  } catch (error) {
    return no(message(error));
  }
  try {
    const socket = await adoptSocket(s);
    socket.close();
    return yes("node:dgram bind({ fd }) took it");
  } catch (error) {
    native.close(s.fd);
    return no(`node:dgram bind({ fd }) refused it: ${message(error)}`);
  }
}

let loaded: Promise<{ native: BatchDatagrams | null; detection: Detection }> | null = null;

/**
 * The batch path, or null with the reason, in `detection`. Never throws. Probed once per
 * process for the default options (a runtime that falls back from one path to another
 * asks again); `options` probe afresh. The default load also installs the cached file
 * read for serveDir (adapters/cached_read.ts), where the kernel takes it: every runtime
 * loads this when it binds its sockets, so it is there before the first file is served.
 */
export function loadNative(options: DetectOptions = {}): Promise<{ native: BatchDatagrams | null; detection: Detection }> {
  if (options.disable !== undefined) return probeNative(options).then(({ native, detection }) => ({ native, detection }));
  return (loaded ??= probeNative(options).then(({ native, detection, cachedRead }) => {
    if (cachedRead !== null) installCachedRead(cachedRead);
    return { native, detection };
  }));
}

async function probeNative(options: DetectOptions): Promise<{ native: BatchDatagrams | null; detection: Detection; cachedRead: CachedRead | null }> {
  const runtime = runtimeName();
  const disabled = options.disable ?? envDisabled();
  const libc = disabled !== undefined ? `disabled: ${disabled}` : await loadLibc(runtime).catch((error) => `FFI failed to load: ${message(error)}`);
  if (typeof libc === "string") {
    const why = `no FFI: ${libc}`;
    const none = no(why);
    return { native: null, cachedRead: null, detection: { runtime, ffi: null, reason: libc, gso: none, sendmmsg: none, recvmmsg: none, watch: none, adopt: none, cachedRead: none } };
  }
  let native: BatchDatagrams;
  try {
    native = new BatchDatagrams(libc);
  } catch (error) {
    const why = `${libc.ffi} loaded but failed: ${message(error)}`;
    const none = no(why);
    return { native: null, cachedRead: null, detection: { runtime, ffi: null, reason: why, gso: none, sendmmsg: none, recvmmsg: none, watch: none, adopt: none, cachedRead: none } };
  }
  let calls: Pick<Detection, "gso" | "sendmmsg" | "recvmmsg">;
  try {
    calls = probe(native);
  } catch (error) {
    const why = `probe failed: ${message(error)}`;
    calls = { gso: no(why), sendmmsg: no(why), recvmmsg: no(why) };
  }
  const watch = libc.watch ? yes("koffi's libuv poll handles (beyond eight sockets at a time, one on an epoll set of the rest)") : no(`${libc.ffi} has no wait for readability on the event loop`);
  const adopt = await probeAdopt(native).catch((error) => no(message(error)));
  let nowait;
  try {
    nowait = probeNowaitRead(native);
  } catch (error) {
    nowait = { ok: false, why: `probe failed: ${message(error)}`, read: null };
  }
  const usable = calls.gso.ok || calls.sendmmsg.ok || calls.recvmmsg.ok;
  return {
    native: usable ? native : null,
    cachedRead: nowait.read,
    detection: {
      runtime, ffi: libc.ffi, reason: usable ? null : "the kernel refused every batch call", ...calls, watch, adopt,
      cachedRead: nowait.ok ? yes(nowait.why) : no(nowait.why),
    },
  };
}

/** What loadNative() finds, without keeping it. */
export async function detect(options: DetectOptions = {}): Promise<Detection> {
  return (await loadNative(options)).detection;
}
