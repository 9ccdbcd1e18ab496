/**
 * TFTP packet types, opcodes and error codes (RFC 1350, 2347).
 *
 * Packets are plain values: `decode` (core/codec.ts) returns a {@link Packet} or a
 * {@link ParseError}, never throws. Payloads are views, not copies: a DATA packet's
 * `payload` points into the datagram it was decoded from.
 *
 * @module
 */

export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

/** Transfer modes; `mail` is parsed so it can be refused by name. */
export type Mode = "netascii" | "octet" | "mail";

/** Option names are lower-cased by the decoder; values are kept as sent. */
export type Options = Record<string, string>;

/**
 * ```
 *  2 bytes   string    1 byte  string  1 byte  [string  1 byte  string  1 byte]*
 *  | 01/02 | filename |  0  |  mode  |  0  |  [ opt  |  0  |  value |  0  ]*
 * ```
 */
export interface RequestPacket {
  op: typeof Opcode.RRQ | typeof Opcode.WRQ;
  filename: string;
  mode: Mode;
  /** Options in the order the client sent them; a repeated name keeps its first value. */
  options: Options;
}

/**
 * ```
 *  2 bytes  2 bytes  n bytes
 *  |  03  | block |  payload  |
 * ```
 */
export interface DataPacket {
  op: typeof Opcode.DATA;
  block: number;
  payload: Uint8Array;
}

/**
 * ```
 *  2 bytes  2 bytes
 *  |  04  | block |
 * ```
 */
export interface AckPacket {
  op: typeof Opcode.ACK;
  block: number;
}

/**
 * ```
 *  2 bytes  2 bytes   string   1 byte
 *  |  05  |  code  |  message |  0  |
 * ```
 */
export interface ErrorPacket {
  op: typeof Opcode.ERROR;
  code: number;
  message: string;
}

/**
 * ```
 *  2 bytes  [string  1 byte  string  1 byte]*
 *  |  06  |  [ opt  |  0  |  value |  0  ]*
 * ```
 */
export interface OackPacket {
  op: typeof Opcode.OACK;
  options: Options;
}

export type Packet = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** Why a datagram is not a TFTP packet. Values are shared with the WASM decoder. */
export const ParseFailure = {
  TOO_SHORT: 1,
  BAD_OPCODE: 2,
  UNTERMINATED: 3,
  EMPTY_FILENAME: 4,
  BAD_MODE: 5,
  OPTION_WITHOUT_VALUE: 6,
  TOO_MANY_OPTIONS: 7,
  TOO_LONG: 8,
} as const;

export interface ParseError {
  /** No opcode is 0: a ParseError is told from every packet by it. */
  op: 0;
  reason: number;
  message: string;
}

/** The largest request, OACK or ERROR the decoder accepts; RFC 2347 asks for 512, peers send more. */
export const MAX_CONTROL_PACKET = 4096;
/** Options kept from one request; more is a parse error (a request that long is abuse). */
export const MAX_OPTIONS = 32;
/** Largest DATA packet: the 65464-byte blksize of RFC 2348 plus the 4-byte header. */
export const MAX_DATAGRAM = 65468;

export const PARSE_MESSAGES: Record<number, string> = {
  [ParseFailure.TOO_SHORT]: "packet too short",
  [ParseFailure.BAD_OPCODE]: "unknown opcode",
  [ParseFailure.UNTERMINATED]: "string not terminated",
  [ParseFailure.EMPTY_FILENAME]: "empty file name",
  [ParseFailure.BAD_MODE]: "unknown transfer mode",
  [ParseFailure.OPTION_WITHOUT_VALUE]: "option without a value",
  [ParseFailure.TOO_MANY_OPTIONS]: "too many options",
  [ParseFailure.TOO_LONG]: "packet too long",
};

export function parseError(reason: number): ParseError {
  return { op: 0, reason, message: PARSE_MESSAGES[reason] ?? "malformed packet" };
}
