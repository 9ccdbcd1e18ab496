/**
 * The command line: serves a folder over TFTP.
 *
 *   npx emmer-node [flags]            (this file bundled to dist/emmer-node.js)
 *   deno run -A serve.ts [flags]
 *   bun run serve.ts [flags]
 *
 * @module
 */
import process from "node:process";
import { readFile, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { type ClientRule, Emmer, limitsFor, type MetricsServer, parseClientRule, parseMapFile, type RewriteRule, serveDir, serveMetrics } from "./mod.ts";
import { loadRuntime, runtimeName } from "./adapters/runtime.ts";
import { runClient } from "./cli/client.ts";
import { releaseBurstMemory } from "./cli/burst_memory.ts";
import { type Account, cannotDrop, dropPrivileges, lookupAccount } from "./adapters/privileges.ts";
import { passedSocket, udpFamily } from "./adapters/listen_fds.ts";
import { type FlagSpec, flagLines, getopt, integer, UsageError } from "./cli/getopt.ts";
import { formatJson, formatText } from "./cli/log.ts";
import { type NumberSetting, SETTINGS } from "./core/settings.ts";
import { VERSION } from "./version.ts";

interface Flags {
  root: string;
  host: string;
  port: number;
  write: boolean;
  maxBlksize: number;
  maxWindowsize: number;
  timeout: number;
  retries: number;
  maxSessions: number;
  maxRequestsPerSecond: number;
  singlePort: boolean;
  verbose: boolean;
  workers: number;
  /** tftpd-hpa's -m: a file of rewrite rules. */
  mapFile: string | null;
  /** serveDir's backslash and ignoreCase together: WDS clients need both. */
  windowsNames: boolean;
  mtu: number | null;
  clients: ClientRule[];
  /** Where to serve /metrics (Prometheus text), or null for no metrics. */
  metrics: { host: string; port: number } | null;
  logFormat: "text" | "json";
  /** The ports transfers may use, or null for any free one. */
  portRange: [number, number] | null;
  /** Whom to become once the ports are bound. */
  user: Account | null;
}

/** The server's defaults are core/settings.ts's: written there once, shown by --help from there. */
const DEFAULTS: Flags = {
  root: ".",
  host: SETTINGS.hostname.default,
  port: SETTINGS.port.default,
  write: false,
  maxBlksize: SETTINGS.maxBlksize.default,
  maxWindowsize: SETTINGS.maxWindowsize.default,
  timeout: SETTINGS.timeout.default,
  retries: SETTINGS.retries.default,
  maxSessions: SETTINGS.maxSessions.default,
  maxRequestsPerSecond: SETTINGS.maxRequestsPerSecond.default,
  singlePort: SETTINGS.singlePort.default,
  verbose: false,
  workers: 1,
  mapFile: null,
  windowsNames: false,
  mtu: null,
  clients: [],
  metrics: null,
  logFormat: "text",
  portRange: null,
  user: null,
};

const numeric = (key: keyof Flags, min: number, max: number) => (flags: Flags, value: string, flag: string) => {
  (flags[key] as number) = integer(value, flag, min, max);
};

/** The range the command line takes for a server option: the table's, or its narrower `cli` one. */
function cliRange(key: keyof typeof SETTINGS): [number, number] {
  const s = SETTINGS[key] as NumberSetting;
  return [s.cli?.min ?? s.min, s.max];
}

/** "8..65464": a server option's range on the command line, for --help. */
const range = (key: keyof typeof SETTINGS) => cliRange(key).join("..");

/** A flag's value for the server option of the same name, checked against its range in core/settings.ts. */
const setting = (key: keyof Flags & keyof typeof SETTINGS) => {
  const s = SETTINGS[key] as NumberSetting;
  // The flags take whole numbers (cli/getopt.ts integer): an option that takes fractions must say so in its `cli`.
  if (s.type !== "integer" && !s.cli?.integer) throw new Error(`${key} takes fractions: core/settings.ts must give it cli.integer for the command line`);
  return numeric(key, ...cliRange(key));
};

/**
 * ADDR, ADDR:PORT, [IPV6]:PORT or :PORT, as tftpd-hpa's --address takes it. A bare IPv6
 * address is whole (::1:69 is an address): a port after one needs the brackets.
 */
function setAddress(flags: Flags, value: string, flag: string): void {
  let host = value;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
  if (bracketed) [host, port] = [bracketed[1], bracketed[2]];
  else if (isIP(value) === 0 && value.includes(":")) [host, port] = [value.slice(0, value.lastIndexOf(":")), value.slice(value.lastIndexOf(":") + 1)];
  if (port !== undefined) flags.port = integer(port, `the port in ${flag}`, ...cliRange("port"));
  if (host === "" && port !== undefined) return; // ":69": the port only
  // Names are not resolved (which of a name's addresses, and when?): say so rather than fail to bind.
  if (isIP(host) === 0 || (bracketed && isIP(host) !== 6)) {
    throw new UsageError(`${flag} must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, not "${value}"`);
  }
  flags.host = host;
}

/** --metrics ADDR:PORT or [IPV6]:PORT: both parts, since a metrics port open to every address should be chosen, not a default. */
function setMetrics(flags: Flags, value: string, flag: string): void {
  const m = /^\[([^\]]*)\]:([^:]*)$/.exec(value) ?? /^([^:\]\[]*):([^:]*)$/.exec(value);
  const family = m ? isIP(m[1]) : 0;
  if (!m || family === 0 || (value.startsWith("[") !== (family === 6))) {
    throw new UsageError(`${flag} must be ADDR:PORT, e.g. 127.0.0.1:9469, 0.0.0.0:9469 or [::1]:9469, not "${value}"`);
  }
  flags.metrics = { host: m[1], port: integer(m[2], `the port in ${flag}`, 0, 65535) };
}

function setPortRange(flags: Flags, value: string, flag: string): void {
  const m = /^([0-9]+)-([0-9]+)$/.exec(value);
  const [a, b] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  const { min, max } = SETTINGS.portRange;
  if (!(a >= min! && b <= max! && a <= b)) throw new UsageError(`${flag} must be A-B with ${min} <= A <= B <= ${max}, e.g. 50000-50999, not "${value}"`);
  flags.portRange = [a, b];
}

/** The most processes --workers starts. */
const MAX_WORKERS = 64;

/** The flags, in --help's order. A new flag is one entry here (and its field in Flags). */
const FLAGS: FlagSpec<Flags>[] = [
  { names: ["-r", "-s", "--root"], arg: "DIR", help: "folder to serve (the current folder)", set: (f, v) => (f.root = v) },
  { names: ["-a", "--host"], also: ["--address"], arg: "ADDR[:PORT]", help: `IP address (${DEFAULTS.host}; 0.0.0.0, :: for all)`, set: setAddress },
  { names: ["-p", "--port"], arg: "N", help: `UDP port (${DEFAULTS.port}; TFTP's is 69) or systemd's socket`, set: setting("port") },
  { names: ["-w", "-c", "--write"], help: "accept uploads: create and replace files", set: (f) => (f.write = true) },
  { names: ["--max-blksize"], arg: "N", help: `largest blksize granted, ${range("maxBlksize")} (${DEFAULTS.maxBlksize})`, set: setting("maxBlksize") },
  { names: ["--max-windowsize"], arg: "N", help: `largest windowsize granted, ${range("maxWindowsize")} (${DEFAULTS.maxWindowsize})`, set: setting("maxWindowsize") },
  {
    names: ["--timeout"],
    arg: "S",
    shown: "--timeout S, --retries N",
    help: `resend after S s (${range("timeout")}; ${DEFAULTS.timeout}), N times (${range("retries")}; ${DEFAULTS.retries})`,
    set: setting("timeout"),
  },
  { names: ["--retries"], arg: "N", shown: "", help: "", set: setting("retries") },
  { names: ["--max-sessions"], arg: "N", help: `transfers at once; more go unanswered (${DEFAULTS.maxSessions})`, set: setting("maxSessions") },
  {
    names: ["--max-requests-per-second"],
    arg: "N",
    help: `new requests per client address (${DEFAULTS.maxRequestsPerSecond})`,
    set: setting("maxRequestsPerSecond"),
  },
  { names: ["--single-port"], help: "answer from the listening port (NAT)", set: (f) => (f.singlePort = true) },
  {
    names: ["--port-range"],
    arg: "A-B",
    shown: "--port-range A-B, --user U",
    help: "transfer ports A..B; become user U once bound",
    set: setPortRange,
  },
  { names: ["-m", "--map-file"], arg: "FILE", help: "rewrite requested names (tftpd-hpa -m rules)", set: (f, v) => (f.mapFile = v) },
  { names: ["--windows-names"], help: "\\ as a separator, names in any case (WDS)", set: (f) => (f.windowsNames = true) },
  { names: ["--mtu"], arg: "N", help: "cap blksize so DATA fits N-byte packets", set: numeric("mtu", 68, 65535) },
  {
    names: ["--client"],
    arg: "RANGE:K=V,..",
    help: "per range, e.g. 10.0.0.0/8:blksize=1024,tsize=no",
    set: (f, v, flag) => {
      try {
        f.clients = [...f.clients, parseClientRule(v)];
      } catch (error) {
        throw new UsageError(`${flag} ${(error as Error).message}`);
      }
    },
  },
  { names: ["--workers"], arg: "N", help: `processes sharing the port, 1..${MAX_WORKERS} (${DEFAULTS.workers}; Node only)`, set: numeric("workers", 1, MAX_WORKERS) },
  {
    names: ["--user"],
    arg: "USER[:GROUP]",
    shown: "",
    help: "",
    set: (f, v, flag) => {
      try {
        f.user = lookupAccount(v);
      } catch (error) {
        throw new UsageError(`${flag} ${(error as Error).message}`);
      }
    },
  },
  { names: ["--metrics"], arg: "ADDR:PORT", help: "Prometheus metrics on http://ADDR:PORT/metrics", set: setMetrics },
  {
    names: ["--log-format"],
    arg: "text|json",
    help: `one line per transfer or refusal (${DEFAULTS.logFormat})`,
    set: (f, v, flag) => {
      if (v !== "text" && v !== "json") throw new UsageError(`${flag} must be text or json, not "${v}"`);
      f.logFormat = v;
    },
  },
  { names: ["-v", "--verbose"], help: "log options, retransmits, handler errors", set: (f) => (f.verbose = true) },
  { names: ["-V", "--version"], shown: "-V, --version, -h, --help", help: "print the version, or this help, and exit", action: "version", set: () => {} },
  { names: ["-h", "--help"], shown: "", help: "", action: "help", set: () => {} },
];

function usage(): string {
  return [
    "Usage: emmer-node [flags]         (a client: emmer-node get|put --help)",
    "Serves a folder over TFTP, read-only unless --write. Defaults in parentheses.",
    "",
    ...flagLines(FLAGS),
    "Switches combine (-wv); values go -p 69, -p69, --port 69 or --port=69.",
  ].join("\n");
}

/** The flags (cli/getopt.ts), checked against each other. No operands: the folder is --root's. */
function parseFlags(args: string[]): Flags | "help" | "version" {
  const flags: Flags = { ...DEFAULTS };
  const asked = getopt(args, FLAGS, flags, (arg) => {
    throw new UsageError(`unexpected argument "${arg}" (the folder to serve is given with --root DIR)`);
  });
  if (asked) return asked;
  if (flags.workers > 1) {
    // Workers share the listening socket through node:cluster, or with --single-port each has its
    // own on the port, opened by the primary (adapters/node_workers.ts).
    if (runtimeName() !== "node") throw new UsageError("--workers needs Node (node:cluster); on Deno and Bun, run one process");
    // node:cluster cannot share a UDP socket between processes on Windows (ENOTSUP).
    if (process.platform === "win32") throw new UsageError("--workers is not available on Windows");
    // Each worker would bind a port of its own: clients could reach only one of them.
    if (flags.port === 0) throw new UsageError("--workers needs a fixed --port, not 0");
    // Each worker keeps its own counts and its own transfer ports; these are per process.
    for (const [set, name] of [[flags.metrics, "--metrics"], [flags.portRange, "--port-range"], [flags.user, "--user"]] as const) {
      if (set !== null) throw new UsageError(`${name} needs --workers 1 (each worker would keep its own)`);
    }
  }
  if (flags.portRange !== null && flags.singlePort) throw new UsageError("--port-range and --single-port: with --single-port, transfers use the listening port only");
  if (flags.portRange !== null && flags.portRange[0] < 1024 && flags.user !== null) {
    throw new UsageError("--port-range below 1024 and --user: once the user is changed, ports below 1024 cannot be bound");
  }
  if (flags.user !== null) {
    const why = cannotDrop(flags.user);
    if (why) throw new UsageError(`--user: ${why}`);
  }
  return flags;
}

/** 127.0.0.1:69, [::]:69: the port of an IPv6 address cannot be told from the address without brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * What to do about a bind refused for want of privilege (EACCES; Deno: PermissionDenied),
 * or null for any other error.
 */
function bindHint(error: unknown, port: number): string | null {
  const e = error as { code?: unknown; name?: unknown; message?: unknown };
  const denied = e?.code === "EACCES" || e?.name === "PermissionDenied" || /EACCES|permission denied|os error 13/i.test(String(e?.message));
  if (!denied) return null;
  if (!(port > 0 && port < 1024)) return "the system refused the address: check its firewall or security policy.";
  return [
    `ports below 1024 need privilege: give ${runtimeName()} CAP_NET_BIND_SERVICE, e.g.`,
    `    sudo setcap cap_net_bind_service=+ep ${process.execPath}`,
    "  (or AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit), or listen on",
    "  a port >= 1024 and redirect UDP 69 to it in the firewall, or run as root.",
  ].join("\n");
}

/**
 * The primary of --workers: forks the workers and supervises them. With --single-port it
 * first opens their sockets (one each, SO_REUSEPORT), so that a port that cannot be had
 * is said once, here.
 */
async function runWorkers(workers: typeof import("./adapters/node_workers.ts"), flags: Flags, serving: string): Promise<number> {
  const where = hostPort(flags.host, flags.port);
  let sockets: number[] = [];
  if (flags.singlePort) {
    try {
      sockets = await workers.reusePortSockets(flags.host, flags.port, flags.workers);
    } catch (error) {
      if (error instanceof workers.CannotReusePort) {
        console.error(`emmer-node: ${error.message}`);
        return 2;
      }
      const hint = bindHint(error, flags.port);
      console.error(`emmer-node: cannot listen on ${where}: ${(error as Error).message}${hint ? `\n  ${hint}` : ""}`);
      return 1;
    }
  }
  const each = flags.singlePort ? ", a socket each (SO_REUSEPORT)" : "";
  return workers.runPrimary(flags.workers, () => {
    console.log(`emmer-node: serving ${serving} on ${where}; ${flags.workers} worker processes${each}; Ctrl-C stops`);
  }, (line) => console.log(line), sockets);
}

async function main(): Promise<number> {
  // A log pipe that closes (`emmer-node | head`, a logger that died) must not take the server
  // and its live transfers down with an EPIPE: the lines are lost, the transfers are not.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  const command = process.argv[2];
  if (command === "get" || command === "put") return await runClient(process.argv.slice(2));
  let flags: Flags | "help" | "version";
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`emmer-node: ${error.message}\n(emmer-node --help lists the flags)`);
    return 2;
  }
  if (flags === "help") {
    console.log(usage());
    return 0;
  }
  if (flags === "version") {
    console.log(`emmer-node ${VERSION}`);
    return 0;
  }
  await releaseBurstMemory();
  const root = resolve(flags.root);
  const st = await stat(root).catch(() => null);
  if (!st?.isDirectory()) {
    console.error(`emmer-node: --root ${flags.root}: not a folder`);
    return 2;
  }
  // Read and checked before any worker starts: a bad rule stops the server, it does not surface per request.
  let rewrite: RewriteRule[] | undefined;
  if (flags.mapFile !== null) {
    try {
      rewrite = parseMapFile(await readFile(flags.mapFile, "utf8"));
    } catch (error) {
      console.error(`emmer-node: --map-file ${flags.mapFile}: ${(error as Error).message}`);
      return 2;
    }
  }
  // systemd's socket (socket activation), which replaces --host and --port.
  let fd: number | undefined;
  try {
    fd = passedSocket() ?? undefined;
    if (fd !== undefined) {
      // Deno's sockets, its own and node:dgram alike, cannot be made from a file descriptor.
      if (runtimeName() === "deno") {
        throw new Error("systemd passed a socket (LISTEN_FDS), which Deno cannot take: run emmer-node on Node or Bun, or let it bind (--host, --port)");
      }
      if (flags.workers > 1) throw new Error("systemd passed a socket (LISTEN_FDS): --workers needs a port to share, run one process");
      udpFamily(fd); // not a UDP socket: said now, with what to fix
    }
  } catch (error) {
    console.error(`emmer-node: ${(error as Error).message}`);
    return 2;
  }
  const { clients, mtu } = flags;
  const limited = clients.length > 0 || mtu !== null;
  const access = flags.write ? "read-write" : "read-only";
  const workers = flags.workers > 1 ? await import("./adapters/node_workers.ts") : null;
  if (workers?.isWorker) {
    workers.workerStarting();
    fd ??= workers.workerSocket() ?? undefined; // --single-port: the socket the primary opened for this worker
  }
  // The primary serves nothing itself: it forks the workers and passes signals on.
  if (workers && !workers.isWorker) return await runWorkers(workers, flags, `${root} (${access})`);
  const verbose = flags.verbose;
  const json = flags.logFormat === "json";
  const app = new Emmer({
    hostname: flags.host,
    port: flags.port,
    fd,
    portRange: flags.portRange ?? undefined,
    metrics: flags.metrics !== null,
    maxBlksize: flags.maxBlksize,
    maxWindowsize: flags.maxWindowsize,
    timeout: flags.timeout,
    retries: flags.retries,
    maxSessions: flags.maxSessions,
    maxRequestsPerSecond: flags.maxRequestsPerSecond,
    singlePort: flags.singlePort,
    rewrite,
    optionLimits: limited ? (ctx) => limitsFor(ctx.address, clients, mtu ?? undefined) : undefined,
    onTransfer: (e) => console.log(json ? formatJson(e) : formatText(e, verbose)),
    onError: (error, context) => console.error(`emmer-node: ${context}: ${verbose ? (error as Error)?.stack ?? error : error}`),
  });
  const dir = serveDir(root, { write: flags.write, backslash: flags.windowsNames, ignoreCase: flags.windowsNames });
  app.read("*", dir.read);
  if (dir.write) app.write("*", dir.write);
  // The metrics port first: a port that cannot be bound stops the server before it serves.
  let metrics: MetricsServer | null = null;
  if (flags.metrics !== null) {
    const { host, port } = flags.metrics;
    try {
      metrics = await serveMetrics(() => app.metrics!.render(), host, port);
    } catch (error) {
      const hint = bindHint(error, port);
      console.error(`emmer-node: cannot serve metrics on ${hostPort(host, port)}: ${(error as Error).message}${hint ? `\n  ${hint}` : ""}`);
      return 1;
    }
  }
  try {
    await app.listen();
  } catch (error) {
    await metrics?.close();
    if (fd !== undefined) {
      const whose = workers ? "its primary opened" : "systemd passed";
      console.error(`emmer-node: cannot serve the socket ${whose} (fd ${fd}): ${(error as Error).message}`);
      return 1;
    }
    const hint = bindHint(error, flags.port);
    console.error(`emmer-node: cannot listen on ${hostPort(flags.host, flags.port)}: ${(error as Error).message}${hint ? `\n  ${hint}` : ""}`);
    return 1;
  }
  if (flags.user !== null) {
    try {
      dropPrivileges(flags.user);
    } catch (error) {
      // Serving on as root is not what was asked for.
      console.error(`emmer-node: --user ${flags.user.name}: ${(error as Error).message}`);
      await app.close();
      await metrics?.close();
      return 1;
    }
  }
  const a = app.address!;
  const extras = [
    fd !== undefined ? "socket from systemd" : "",
    metrics ? `metrics on http://${hostPort(metrics.address, metrics.port)}/metrics` : "",
    flags.user !== null ? `as user ${flags.user.name}` : "",
  ].filter(Boolean).map((x) => `${x}; `).join("");
  if (workers) workers.reportListening(); // the primary prints the one startup line
  else console.log(`emmer-node: serving ${root} (${access}) on ${hostPort(a.address, a.port)}; ${extras}Ctrl-C stops`);
  if (verbose) {
    const path = (await loadRuntime()).datagramPath;
    console.log(`emmer-node: datagrams go out ${path ? `${path.path === "gso" ? "a window per send" : "one per send"} (${path.detail})` : "one per send"}`);
  }
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130); // a second Ctrl-C does not wait
      stopping = true;
      if (!workers) console.log(`emmer-node: stopping (live transfers get ${SETTINGS.drainTimeout.default / 1000} s to finish)`);
      Promise.all([app.close(), metrics?.close()]).then(() => done());
    };
    if (workers) workers.onWorkerStop(stop);
    else {
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    }
  });
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  console.error("emmer-node:", error);
  process.exit(1);
});
