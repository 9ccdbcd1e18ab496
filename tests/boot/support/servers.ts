/**
 * The TFTP servers a boot runs against, started inside its namespace: Emmer's
 * CLI (the one under test) and, for the bench, tftpd-hpa as the reference.
 */
import { spawnSync } from "node:child_process";
import { startEmmer } from "./emmer.ts";
import type { Netns } from "./netns.ts";
import { startChild } from "./process.ts";

/** "emmer-node --single-port": every packet of every transfer to and from the listening port. */
export type ServerName = "emmer-node" | "emmer-node --single-port" | "tftpd-hpa";
export const TFTPD_HPA = "/usr/sbin/in.tftpd";

export interface Server {
  name: ServerName;
  /** what the server printed (emmer-node: one line per transfer; tftpd-hpa logs to syslog: nothing) */
  log: () => string;
  stop: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until something in `ns` listens on UDP host:port (tftpd-hpa prints nothing when it is ready). */
async function listening(ns: Netns, host: string, port: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    const r = spawnSync("ip", ["netns", "exec", ns.name, "ss", "-Hlun", `sport = :${port}`], { encoding: "utf8", timeout: 5000 });
    if (r.stdout.includes(`${host}:${port}`)) return true;
  }
  return false;
}

/** Starts `name` serving `root` read-only on host:port inside `ns`. */
export async function startServer(name: ServerName, ns: Netns, root: string, host: string, port: number): Promise<Server> {
  if (name !== "tftpd-hpa") {
    const s = await startEmmer(ns, root, host, port, name === "emmer-node --single-port" ? ["--single-port"] : []);
    return { name, log: s.log, stop: s.stop };
  }
  // -L: stay in the foreground; -s: serve (and chroot into) root. It drops to "nobody": root must be world-readable.
  const child = startChild(ns.exec([TFTPD_HPA, "-L", "-s", root, "-a", `${host}:${port}`]), 600_000);
  if (!(await listening(ns, host, port, 5000))) {
    await child.stop();
    throw new Error(`tftpd-hpa did not listen on ${host}:${port}: ${child.output()}`);
  }
  return { name, log: child.output, stop: async () => void (await child.stop("SIGTERM")) };
}
