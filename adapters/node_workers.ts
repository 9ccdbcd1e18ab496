/**
 * `emmer-node --workers N`: N processes serving one listening port (Node only).
 *
 * Why processes: Emmer's engine runs on one event loop, and on loopback or a
 * fast link each DATA packet's sendmsg carries the kernel's whole delivery
 * path. In a boot storm that is the bottleneck, and one thread cannot use a
 * second core. Under node:cluster the workers share the listening socket (the
 * kernel hands each request to one of them), and each transfer then lives on
 * its own port in the worker that accepted the request (adapters/node.ts binds
 * transfer ports exclusive). So every transfer's packets reach the process that
 * owns it.
 *
 * With --single-port a transfer's packets come to the listening port, so one shared
 * socket would hand them to any worker. There the primary opens a socket per worker
 * instead, all bound to the port with SO_REUSEPORT (the kernel sends each client's
 * datagrams, by a hash of its address and port, to one socket of the group), and
 * hands each worker its own as a descriptor. The primary keeps them open: a worker
 * that dies is replaced on the same socket, so the group never changes and no other
 * worker's clients are moved to another process mid-transfer.
 *
 * Per-worker state: --max-sessions and --max-requests-per-second are enforced by
 * each worker on the requests it receives (the limits are per worker).
 */
import cluster from "node:cluster";
import process from "node:process";

/** True in a process forked by runPrimary. */
export const isWorker = cluster.isWorker;

/** Where a worker finds the socket its primary opened for it: after stdin, stdout, stderr and the IPC channel. */
const SOCKET_FD = 4;
const SOCKET_ENV = "EMMER_WORKER_SOCKET";

/** In a worker given a socket of its own (--single-port), its descriptor; else null. */
export function workerSocket(): number | null {
  return isWorker && process.env[SOCKET_ENV] === String(SOCKET_FD) ? SOCKET_FD : null;
}

/** This machine cannot make the sockets of --single-port with --workers (a usage error, not a bind that failed). */
export class CannotReusePort extends Error {}

/**
 * `count` UDP sockets on `host`:`port` in one SO_REUSEPORT group, for the workers of
 * --single-port (Linux, through the FFI of adapters/native/). Throws with what to fix.
 */
export async function reusePortSockets(host: string, port: number, count: number): Promise<number[]> {
  const { loadNative } = await import("./native/detect.ts");
  const { native, detection } = await loadNative();
  if (native === null) {
    throw new CannotReusePort(`--single-port with --workers needs sockets of Emmer's own (SO_REUSEPORT), which this machine cannot make (${detection.reason}): run one process, or drop --single-port`);
  }
  // Sockets with SO_REUSEPORT would join a group another server (of this user) already has
  // on the port, and share its clients: a plain bind first tells that the port is taken.
  native.close(native.openUdp(host, port).fd);
  const fds: number[] = [];
  try {
    for (let i = 0; i < count; i++) fds.push(native.openUdp(host, port, true).fd);
  } catch (error) {
    for (const fd of fds) native.close(fd);
    throw error;
  }
  return fds;
}

/**
 * Called first thing in a worker: SIGINT is ignored from the start (a terminal's
 * Ctrl-C reaches the whole process group, the primary included, and the primary
 * decides), so a Ctrl-C during start-up cannot pass for a worker that failed.
 */
export function workerStarting(): void {
  process.on("SIGINT", () => {});
}

/** A worker tells the primary it listens (after Emmer.listen resolved). */
export function reportListening(): void {
  process.send?.({ emmer: "listening" });
}

/**
 * A worker drains on its first SIGTERM and ignores the next ones (a service
 * manager may signal the whole group while the primary passes its own on); the
 * primary's SIGKILL is the only forced stop. If the primary dies, node:cluster
 * ends the worker itself when the IPC channel closes.
 */
export function onWorkerStop(stop: () => void): void {
  let stopping = false;
  process.on("SIGTERM", () => {
    if (stopping) return;
    stopping = true;
    stop();
  });
}

/** Replacements allowed per minute before the primary gives up (a worker that dies at once would loop). */
const MAX_RESTARTS_PER_MINUTE = 10;

/**
 * Forks `count` workers running this same command line and supervises them:
 * calls `onListening` once all of the first ones listen; a first worker that
 * dies before that stops the whole server with its exit code (e.g. the port is
 * taken); a worker that dies later is replaced, at most MAX_RESTARTS_PER_MINUTE
 * times a minute. SIGINT/SIGTERM to the primary reach the workers as SIGTERM
 * (each drains its own transfers); a second one kills them. The returned promise
 * resolves with the exit code once all workers are gone. `sockets`: one per worker
 * (reusePortSockets), handed to the worker in that place and to its replacements.
 */
export function runPrimary(count: number, onListening: () => void, log: (line: string) => void, sockets: number[] = []): Promise<number> {
  return new Promise((resolveExit) => {
    let ready = 0;
    let announced = false;
    let stopping = false;
    let exitCode = 0;
    const restarts: number[] = [];
    const live = new Set<import("node:cluster").Worker>();

    const stopAll = (signal: NodeJS.Signals) => {
      for (const w of live) w.process.kill(signal);
    };
    const shutDown = (code: number) => {
      stopping = true;
      exitCode = code;
      stopAll("SIGTERM");
      if (live.size === 0) resolveExit(exitCode);
    };
    const fork = (place: number) => {
      const socket = sockets[place];
      if (socket !== undefined) cluster.setupPrimary({ stdio: ["inherit", "inherit", "inherit", "ipc", socket] });
      const w = cluster.fork(socket === undefined ? {} : { [SOCKET_ENV]: String(SOCKET_FD) });
      live.add(w);
      let listening = false;
      w.on("error", (error) => log(`emmer-node: worker ${w.process.pid}: ${error.message}`));
      w.on("message", (m: { emmer?: string }) => {
        if (m?.emmer !== "listening" || listening) return;
        listening = true;
        if (!announced && ++ready === count) {
          announced = true;
          onListening();
        }
      });
      w.on("exit", (code, signal) => {
        live.delete(w);
        if (stopping) {
          if (live.size === 0) resolveExit(exitCode);
          return;
        }
        if (!announced) return shutDown(code || 1); // could not start: its own message says why
        const now = Date.now();
        restarts.push(now);
        while (restarts[0] < now - 60_000) restarts.shift();
        if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
          log(`emmer-node: workers keep dying (${restarts.length} in a minute); stopping`);
          return shutDown(1);
        }
        log(`emmer-node: worker ${w.process.pid} died (${signal ?? `exit ${code}`}); starting another`);
        fork(place);
      });
    };
    const stop = () => {
      if (stopping) {
        // A second Ctrl-C does not wait.
        stopAll("SIGKILL");
        process.exit(130);
      }
      log("emmer-node: stopping (live transfers get 5 s to finish)");
      shutDown(0);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    for (let i = 0; i < count; i++) fork(i);
  });
}
