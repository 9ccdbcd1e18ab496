/**
 * What handlers see: the request's context, and the shapes of read and write routes.
 */
import type { Mode, Options } from "./packet.ts";
import type { ReadBody } from "./body.ts";
import type { PolicyContext } from "./policy.ts";

/** What a handler knows about a request. */
export interface RequestContext {
  /** The client's address and port (its transfer ID). */
  address: string;
  port: number;
  /**
   * The file name routes matched: the client's, after the server's `rewrite` rules (without
   * rules, as the client sent it), decoded as UTF-8 (bytes that are not become U+FFFD, which serveDir refuses).
   */
  filename: string;
  /** The file name as the client sent it, before any rewrite. */
  requested: string;
  /** Named groups of the route's pattern. */
  params: Record<string, string>;
  mode: Mode;
  /** The options the client asked for (names lower-cased). */
  options: Options;
}

export type ReadHandler = (ctx: RequestContext) => ReadBody | Promise<ReadBody>;

export interface WriteContext extends RequestContext {
  /** The size the client announced (tsize option), if it did. */
  size?: number;
}

export interface UploadContext extends WriteContext {
  /** The uploaded bytes, as they arrive (netascii already converted). */
  body: ReadableStream<Uint8Array>;
  /**
   * Aborted once the upload can no longer succeed: the transfer failed, or the
   * handler ran past its deadline and the client was told so. A handler that
   * commits the upload (a rename, a database write) checks it just before.
   */
  signal: AbortSignal;
}

export interface WriteRoute {
  /** Runs before anything is acknowledged: false (or a TftpError) refuses the upload. */
  accept?: (ctx: WriteContext) => boolean | void | Promise<boolean | void>;
  /** Consumes the upload. false or a throw refuses it: the client gets an ERROR, not the last ACK. */
  handle: (ctx: UploadContext) => unknown | Promise<unknown>;
}

/** A request, as the endpoint hands it to be routed: what the optionLimits hook sees too. */
export type RequestInfo = PolicyContext;
