/**
 * Dropping root after the sockets are bound (--user): the server then reads and
 * writes files as that user, and a flaw in it is not a root shell. POSIX only;
 * Node and Bun have setgroups, Deno only setgid and setuid (see dropPrivileges).
 */
import process from "node:process";
import { readFileSync } from "node:fs";

export interface Account {
  name: string;
  /** Found in /etc/passwd: its supplementary groups can be looked up by name. */
  listed: boolean;
  uid: number;
  gid: number;
}

function table(path: string): string[][] {
  try {
    return readFileSync(path, "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(":"));
  } catch {
    return [];
  }
}

/** USER[:GROUP], names or numbers; without GROUP, the user's own group. Throws a message that says what is wrong. */
export function lookupAccount(spec: string): Account {
  const [user, group, extra] = spec.split(":");
  if (!user || extra !== undefined || group === "") throw new Error(`must be USER or USER:GROUP, not "${spec}"`);
  const passwd = table("/etc/passwd");
  const row = passwd.find((r) => r[0] === user) ?? (/^[0-9]+$/.test(user) ? passwd.find((r) => r[2] === user) : undefined);
  let uid: number;
  let gid: number | undefined;
  let name = user;
  if (row) [name, uid, gid] = [row[0], Number(row[2]), Number(row[3])];
  else if (/^[0-9]+$/.test(user)) uid = Number(user);
  else throw new Error(`no user "${user}" in /etc/passwd`);
  if (group !== undefined) {
    const g = table("/etc/group").find((r) => r[0] === group);
    if (g) gid = Number(g[2]);
    else if (/^[0-9]+$/.test(group)) gid = Number(group);
    else throw new Error(`no group "${group}" in /etc/group`);
  }
  if (gid === undefined) throw new Error(`user ${user} is not in /etc/passwd: give its group too (UID:GID)`);
  return { name, listed: row !== undefined, uid, gid };
}

type Ids = {
  getuid?: () => number;
  setuid?: (id: number) => void;
  setgid?: (id: number) => void;
  setgroups?: (groups: number[]) => void;
  initgroups?: (user: string, group: number) => void;
};

/** What stops this runtime from becoming `account`, or null when it can. Checked before anything is bound. */
export function cannotDrop(account: Account): string | null {
  const p = process as unknown as Ids;
  if (typeof p.setuid !== "function" || typeof p.setgid !== "function" || typeof p.getuid !== "function") {
    return "this runtime cannot change its user (no process.setuid): run it as that user, e.g. User= in the systemd unit";
  }
  if (p.getuid() === account.uid) return null; // already that user
  if (p.getuid() !== 0) return `changing to user ${account.name} needs root (this is uid ${p.getuid()}); without root, run as that user directly`;
  if (typeof p.setgroups !== "function" && supplementaryGroups().some((g) => g !== account.gid)) {
    return `this runtime cannot drop the supplementary groups (${supplementaryGroups().join(" ")}; no process.setgroups): ` +
      "start it without them (systemd: User= in the unit) or use Node or Bun";
  }
  return null;
}

/** The process's supplementary groups, from /proc (Deno's getgroups is not to be trusted for this). */
function supplementaryGroups(): number[] {
  try {
    const line = readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith("Groups:")) ?? "";
    return line.slice(7).trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Becomes `account`: supplementary groups, then group, then user (after setuid, the others are not ours to change). */
export function dropPrivileges(account: Account): void {
  const p = process as unknown as Required<Ids>;
  if (p.getuid() === account.uid) return;
  if (typeof p.initgroups === "function" && account.listed) p.initgroups(account.name, account.gid);
  else if (typeof p.setgroups === "function") p.setgroups([account.gid]);
  p.setgid(account.gid);
  p.setuid(account.uid);
  if (p.getuid() !== account.uid) throw new Error(`still uid ${p.getuid()} after setuid(${account.uid})`);
}
