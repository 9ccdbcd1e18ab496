/**
 * Private network namespaces for boot tests: each test gets its own (named, so
 * several processes can join it with `ip netns exec`), with lo up, so port 69
 * and any test address are its alone and no packet leaves the machine. Needs
 * root and iproute2.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

export interface Netns {
  name: string;
  /** argv prefix that runs a command inside the namespace (`ip netns exec` execs it: same PID) */
  exec: (argv: string[]) => string[];
  /** runs `ip ARGS` inside the namespace; throws with ip's message when it fails */
  ip: (...args: string[]) => void;
}

let made = 0;
const PREFIX = "emmer-boot-";

/** Removes namespaces an earlier run of these tests left behind when its process died (its PID is gone). */
function sweep(): void {
  const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8", timeout: 10_000 });
  for (const m of (r.stdout ?? "").matchAll(new RegExp(`^(${PREFIX}(\\d+)-\\d+)`, "gm"))) {
    if (Number(m[2]) === process.pid || existsSync(`/proc/${m[2]}`)) continue;
    spawnSync("ip", ["netns", "del", m[1]], { timeout: 10_000 });
  }
}

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Runs `fn` with a fresh namespace, removed afterwards whatever happens. */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>): Promise<T> {
  if (made === 0) sweep();
  const name = `${PREFIX}${process.pid}-${++made}`;
  ip(["netns", "add", name]);
  try {
    const ns: Netns = {
      name,
      exec: (argv) => ["ip", "netns", "exec", name, ...argv],
      ip: (...args) => ip(["-n", name, ...args]),
    };
    ns.ip("link", "set", "lo", "up");
    return await fn(ns);
  } finally {
    ip(["netns", "del", name]);
  }
}
