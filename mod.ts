/**
 * Emmer: a framework for dynamic TFTP servers. Routes match the requested file
 * name; handlers get the client's address and port, the name and its captures,
 * and return what to send, or receive an upload. Runs on Node, Deno and Bun.
 *
 * @example
 * ```ts
 * import { Emmer, serveDir, TftpError } from "./mod.ts";
 *
 * const app = new Emmer({ hostname: "127.0.0.1", port: 3942 });
 * app.read(/^pxelinux\.cfg\/01-(?<mac>[0-9a-f-]+)$/, ({ address, params }) =>
 *   `DEFAULT linux\n# ${params.mac} at ${address}\n`);
 * app.read("secret/*", () => { throw new TftpError(2, "no"); });
 * app.read("*", serveDir("./tftpboot").read);
 * await app.listen();
 * ```
 *
 * @module
 */
import { Emmer as EmmerCore, type EmmerOptions } from "./drivers/app.ts";
import { type ClientOptions, TftpClient as ClientCore } from "./drivers/client.ts";
import { loadRuntime } from "./adapters/runtime.ts";
import { addProcessMetrics } from "./adapters/process_metrics.ts";

/** An Emmer server on the running runtime's sockets (Node, Deno or Bun). */
export class Emmer extends EmmerCore {
  constructor(options: EmmerOptions = {}) {
    super({ runtime: loadRuntime, ...options });
    if (this.metrics) addProcessMetrics(this.metrics);
  }
}

/** A TFTP client (get, put) on the running runtime's sockets. */
export class TftpClient extends ClientCore {
  constructor(host: string, port = 69, options: Partial<ClientOptions> = {}) {
    super(host, port, { runtime: loadRuntime, ...options });
  }
}

export type { GetResult, TransferOptions } from "./drivers/client.ts";
export type { EmmerOptions, WriteHandler } from "./drivers/app.ts";
export type { FailureReason, TransferEvent, TransferStart } from "./core/events.ts";
export type { ReadHandler, RequestContext, UploadContext, WriteContext, WriteRoute } from "./core/routes.ts";
export { Counter, Gauge, Histogram, Registry } from "./core/metrics.ts";
export { type MetricsServer, serveMetrics } from "./adapters/metrics_http.ts";
export type { BlockSource, FillTarget, ReadBody } from "./core/body.ts";
export type { DatagramTransport, Runtime } from "./core/transport.ts";
export { TftpError } from "./core/errors.ts";
export { TftpServerError } from "./drivers/client.ts";
export { VERSION } from "./version.ts";
export { ErrorCode } from "./core/packet.ts";
export { serveDir, type ServeDirOptions, type ServedDir } from "./adapters/fs.ts";
export type { RewriteClient, RewriteRule } from "./core/remap.ts";
export { MapFileError, parseMapFile } from "./core/map_file.ts";
export { blksizeForMtu, type ClientRule, limitsFor, type OptionLimits, parseClientRule, type PolicyContext } from "./core/policy.ts";
