/**
 * systemd socket activation (sd_listen_fds(3)): systemd binds the port (69 needs
 * no privilege of ours then) and passes the socket as file descriptor 3, with
 * LISTEN_FDS=1 and LISTEN_PID=<our pid> in the environment.
 */
import process from "node:process";
import { fstatSync, readFileSync } from "node:fs";

/** The first passed descriptor (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/**
 * The descriptor of the socket systemd passed, or null when none was passed to this
 * process. Throws (with what to fix) for more than one socket; udpFamily checks the one.
 * The variables are removed, as sd_listen_fds does, so that no child takes them for its own.
 */
export function passedSocket(env = process.env, pid = process.pid): number | null {
  const fds = env.LISTEN_FDS;
  if (fds === undefined || env.LISTEN_PID !== String(pid)) return null;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (fds !== "1") throw new Error(`systemd passed ${fds} sockets (LISTEN_FDS): give the .socket unit one ListenDatagram= line`);
  return FIRST_FD;
}

/**
 * 4 or 6: node:dgram must be told a socket's family, and cannot ask the descriptor.
 * The kernel's UDP tables list every socket by inode, IPv4 and IPv6 apart.
 */
export function udpFamily(fd: number): 4 | 6 {
  let inode: string;
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) throw new Error("not a socket");
    inode = String(st.ino);
  } catch (error) {
    throw new Error(`file descriptor ${fd} from systemd (LISTEN_FDS): ${(error as Error).message}`);
  }
  for (const [table, family] of [["udp", 4], ["udp6", 6]] as const) {
    let text = "";
    try {
      text = readFileSync(`/proc/self/net/${table}`, "utf8");
    } catch { /* no IPv6, or no /proc: the other table may still tell */ }
    // columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    if (text.split("\n").some((line) => line.trim().split(/\s+/)[9] === inode)) return family;
  }
  throw new Error(`file descriptor ${fd} from systemd (LISTEN_FDS) is not a UDP socket: the .socket unit needs ListenDatagram=, not ListenStream=`);
}
