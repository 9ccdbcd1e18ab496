/**
 * Picks the running runtime's adapter by dynamic import, so that no runtime
 * ever loads another runtime's code. Deno without its unstable net API (a
 * script run without --unstable-net) uses node:dgram, which Deno provides.
 */
import type { Runtime } from "../core/transport.ts";

export type RuntimeName = "node" | "deno" | "bun";

const g = globalThis as { Deno?: { listenDatagram?: unknown }; Bun?: unknown };

/** The runtime this code runs on. */
export function runtimeName(): RuntimeName {
  if (g.Bun !== undefined) return "bun";
  if (g.Deno !== undefined) return "deno";
  return "node";
}

let loaded: Promise<Runtime> | null = null;

export function loadRuntime(): Promise<Runtime> {
  loaded ??= (() => {
    const name = runtimeName();
    // Bun: transfer sockets made through libc, read by Bun.udpSocket, send windows by UDP GSO (gso_windows.ts).
    if (name === "bun") return Promise.all([import("./bun.ts"), import("./gso_windows.ts")]).then(([b, w]) => w.withWindows(b.runtime, b.adopt));
    // Deno: Deno.listenDatagram's sockets, their windows sent by UDP GSO where the FFI allows (deno.ts).
    if (name === "deno" && typeof g.Deno!.listenDatagram === "function") return import("./deno.ts").then((m) => m.withWindows());
    // Node: sockets of its own where the machine allows (native_udp.ts); else windows by UDP GSO
    // on node:dgram's sockets (gso_windows.ts); else node:dgram alone.
    return Promise.all([import("./node.ts"), import("./gso_windows.ts"), import("./native_udp.ts"), import("./node_workers.ts")])
      .then(([n, w, u, c]) => u.withNativeSockets(n.runtime, c.isWorker, w.withWindows));
  })();
  return loaded;
}
