/**
 * The one exception a handler throws on purpose: it becomes a TFTP ERROR packet
 * with this code and message. Any other exception becomes ERROR 0 with a
 * generic message (the details go to the log, not to the client).
 */
export class TftpError extends Error {
  readonly code: number;
  /** `options.cause`: what led to it (e.g. the error of a client's upload body). */
  constructor(code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TftpError";
    this.code = code;
  }
}
