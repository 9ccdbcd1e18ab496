/**
 * Picks the running runtime's adapter by dynamic import, so that no runtime
 * ever loads another runtime's code.
 */
import type { Runtime } from "../core/transport.ts";

let loaded: Promise<Runtime> | null = null;

export function loadRuntime(): Promise<Runtime> {
  loaded ??= import("./node.ts").then((m) => m.runtime);
  return loaded;
}
