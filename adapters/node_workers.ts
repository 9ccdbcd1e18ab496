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
 * owns it, which is also why --single-port needs a single worker.
 *
 * Per-worker state: --max-sessions and --max-requests-per-second are enforced by
 * each worker on the requests it receives (the limits are per worker).
 */
import cluster from "node:cluster";
import process from "node:process";

/** True in a process forked by runPrimary. */
export const isWorker = cluster.isWorker;

/** A worker tells the primary it listens (after Emmer.listen resolved). */
export function reportListening(): void {
  process.send?.({ emmer: "listening" });
}

/**
 * A worker's stop signals: SIGTERM from the primary (or the primary's death,
 * which closes the IPC channel). SIGINT is ignored: a terminal's Ctrl-C reaches
 * the primary too, and the primary decides.
 */
export function onWorkerStop(stop: () => void): void {
  process.on("SIGINT", () => {});
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
}

/**
 * Forks `count` workers running this same command line and supervises them:
 * resolves `listening` once all of them listen; a worker that dies before that
 * stops the whole server with its exit code (e.g. the port is taken); one that
 * dies later is replaced. SIGINT/SIGTERM reach the workers (each drains its own
 * transfers); the returned promise resolves with the exit code once all are gone.
 */
export function runPrimary(count: number, onListening: () => void, log: (line: string) => void): Promise<number> {
  return new Promise((resolveExit) => {
    let ready = 0;
    let stopping = false;
    let exitCode = 0;
    const live = new Set<import("node:cluster").Worker>();

    const stopAll = (signal: NodeJS.Signals) => {
      for (const w of live) w.process.kill(signal);
    };
    const fork = () => {
      const w = cluster.fork();
      live.add(w);
      let listening = false;
      w.on("message", (m: { emmer?: string }) => {
        if (m?.emmer !== "listening" || listening) return;
        listening = true;
        if (++ready === count) onListening();
      });
      w.on("exit", (code, signal) => {
        live.delete(w);
        if (!stopping && !listening) {
          // Could not start (its own message says why): do not fork in a loop.
          stopping = true;
          exitCode = code ?? 1;
          stopAll("SIGTERM");
        } else if (!stopping) {
          log(`emmer-node: worker ${w.process.pid} died (${signal ?? `exit ${code}`}); starting another`);
          fork();
        }
        if (live.size === 0 && stopping) resolveExit(exitCode);
      });
    };
    const stop = () => {
      if (stopping) {
        // A second Ctrl-C does not wait; the terminal sent it to the workers as well.
        stopAll("SIGKILL");
        process.exit(130);
      }
      stopping = true;
      log("emmer-node: stopping (live transfers get 5 s to finish)");
      // Workers ignore SIGINT (Ctrl-C in a terminal reaches the whole process
      // group) and take their orders from here, whichever signal the primary got.
      stopAll("SIGTERM");
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    for (let i = 0; i < count; i++) fork();
  });
}
