// core/options.ts negotiate() on plain values: what each option is granted,
// the server's caps, what is ignored (out of range or not a decimal integer, as
// RFC 2347 asks: the option is left out of the OACK, the transfer goes on with
// its default), tsize per direction and mode, and the per-request limits.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { negotiate, type Negotiated, type NegotiationLimits } from "../core/options.ts";
import type { Mode, Options } from "../core/packet.ts";

const SERVER: NegotiationLimits = { maxBlksize: 65464, maxWindowsize: 65535, timeoutMs: 2000 };

/** What a case checks: the granted values and the OACK (null: none is sent). */
type Granted = Pick<Negotiated, "blksize" | "windowsize" | "timeoutMs" | "rollover" | "reply"> & { announcedSize?: number };

const granted = (n: Negotiated): Granted => {
  const g: Granted = { blksize: n.blksize, windowsize: n.windowsize, timeoutMs: n.timeoutMs, rollover: n.rollover, reply: n.reply };
  if (n.announcedSize !== undefined) g.announcedSize = n.announcedSize;
  return g;
};

/** The defaults with `changes`: RFC 1350's 512-byte lock-step blocks, the server's timeout, no OACK. */
const plain = (changes: Partial<Granted> = {}): Granted => ({ blksize: 512, windowsize: 1, timeoutMs: 2000, rollover: 0, reply: null, ...changes });

interface Case {
  what: string;
  kind?: "read" | "write";
  mode?: Mode;
  asked: Options;
  limits?: Partial<NegotiationLimits>;
  /** RRQ: the body's size, when the handler knows it */
  size?: number;
  want: Granted;
}

const cases: Case[] = [
  // RFC 2348 blksize: 8..65464; larger is answered with the largest the server grants.
  { what: "blksize 8, the smallest", asked: { blksize: "8" }, want: plain({ blksize: 8, reply: { blksize: "8" } }) },
  { what: "blksize 7, below the range: ignored", asked: { blksize: "7" }, want: plain() },
  { what: "blksize 0: ignored", asked: { blksize: "0" }, want: plain() },
  { what: "blksize 1468", asked: { blksize: "1468" }, want: plain({ blksize: 1468, reply: { blksize: "1468" } }) },
  { what: "blksize 65464, the largest", asked: { blksize: "65464" }, want: plain({ blksize: 65464, reply: { blksize: "65464" } }) },
  { what: "blksize 65465: answered with 65464", asked: { blksize: "65465" }, want: plain({ blksize: 65464, reply: { blksize: "65464" } }) },
  { what: "blksize 100000: answered with 65464", asked: { blksize: "100000" }, want: plain({ blksize: 65464, reply: { blksize: "65464" } }) },
  { what: "blksize 0001024 (leading zeros): 1024, answered as 1024", asked: { blksize: "0001024" }, want: plain({ blksize: 1024, reply: { blksize: "1024" } }) },
  { what: "blksize above maxBlksize: capped", asked: { blksize: "65464" }, limits: { maxBlksize: 1468 }, want: plain({ blksize: 1468, reply: { blksize: "1468" } }) },
  { what: "blksize 100000 with a maxBlksize beyond the RFC's: still 65464", asked: { blksize: "100000" }, limits: { maxBlksize: 70000 }, want: plain({ blksize: 65464, reply: { blksize: "65464" } }) },
  { what: "blksize below maxBlksize: as asked", asked: { blksize: "1000" }, limits: { maxBlksize: 1468 }, want: plain({ blksize: 1000, reply: { blksize: "1000" } }) },
  // RFC 7440 windowsize: 1..65535; out of range is ignored, not clamped.
  { what: "windowsize 1", asked: { windowsize: "1" }, want: plain({ windowsize: 1, reply: { windowsize: "1" } }) },
  { what: "windowsize 0: ignored", asked: { windowsize: "0" }, want: plain() },
  { what: "windowsize 65535, the largest", asked: { windowsize: "65535" }, want: plain({ windowsize: 65535, reply: { windowsize: "65535" } }) },
  { what: "windowsize 65536, beyond the range: ignored", asked: { windowsize: "65536" }, want: plain() },
  { what: "windowsize above maxWindowsize: capped", asked: { windowsize: "100" }, limits: { maxWindowsize: 64 }, want: plain({ windowsize: 64, reply: { windowsize: "64" } }) },
  { what: "windowsize below maxWindowsize: as asked", asked: { windowsize: "16" }, limits: { maxWindowsize: 64 }, want: plain({ windowsize: 16, reply: { windowsize: "16" } }) },
  // RFC 2349 timeout: 1..255 seconds, echoed as asked.
  { what: "timeout 1", asked: { timeout: "1" }, want: plain({ timeoutMs: 1000, reply: { timeout: "1" } }) },
  { what: "timeout 255, the largest", asked: { timeout: "255" }, want: plain({ timeoutMs: 255_000, reply: { timeout: "255" } }) },
  { what: "timeout 0: ignored, the server's timeout stays", asked: { timeout: "0" }, want: plain() },
  { what: "timeout 256: ignored", asked: { timeout: "256" }, want: plain() },
  // RFC 2349 tsize: a read is told the size when it is known and honest; a write announces its own.
  { what: "tsize on an octet read of known size: the size", asked: { tsize: "0" }, size: 123_456, want: plain({ reply: { tsize: "123456" } }) },
  { what: "tsize on a read whose size is unknown (a stream): left out", asked: { tsize: "0" }, want: plain() },
  { what: "tsize on a netascii read: withheld (netascii changes the length on the wire)", mode: "netascii", asked: { tsize: "0" }, size: 123_456, want: plain() },
  { what: "tsize on a write: the announced size, echoed", kind: "write", asked: { tsize: "5000" }, want: plain({ announcedSize: 5000, reply: { tsize: "5000" } }) },
  { what: "tsize on a netascii write: the announced size, echoed", kind: "write", mode: "netascii", asked: { tsize: "5000" }, want: plain({ announcedSize: 5000, reply: { tsize: "5000" } }) },
  { what: "tsize 0 on a write (an empty file)", kind: "write", asked: { tsize: "0" }, want: plain({ announcedSize: 0, reply: { tsize: "0" } }) },
  // Not a decimal integer with no sign, space or exponent: ignored.
  ...["", "-1", "+1024", " 1024", "1024 ", "1e3", "0x400", "1024.0", "abc", "1234567890123456"].map((v): Case => ({
    what: `blksize, windowsize, timeout and a write's tsize all "${v}": all ignored`,
    kind: "write",
    asked: { blksize: v, windowsize: v, timeout: v, tsize: v },
    want: plain(),
  })),
  // Unknown options are not acknowledged; the known ones beside them are.
  { what: "unknown options only: no OACK", asked: { multicast: "", foo: "bar", utimeout: "500" }, want: plain() },
  { what: "an unknown option beside blksize: only blksize", asked: { foo: "1", blksize: "1024" }, want: plain({ blksize: 1024, reply: { blksize: "1024" } }) },
  // tftpd-hpa's rollover, on reads only.
  { what: "rollover 1 on a read", asked: { rollover: "1" }, want: plain({ rollover: 1, reply: { rollover: "1" } }) },
  { what: "rollover 0 on a read, with the server's default 1", asked: { rollover: "0" }, limits: { rollover: 1 }, want: plain({ rollover: 0, reply: { rollover: "0" } }) },
  { what: "rollover 2: ignored", asked: { rollover: "2" }, want: plain() },
  { what: "rollover on a write: not acknowledged (the client numbers the blocks)", kind: "write", asked: { rollover: "1" }, want: plain() },
  { what: "no rollover asked: the per-request default", asked: {}, limits: { rollover: 1 }, want: plain({ rollover: 1 }) },
  // Per-request limits (core/policy.ts OptionLimits, as the server hands them on): an option
  // withheld is treated as not asked for, the others still granted.
  { what: "blksize withheld", asked: { blksize: "1468", windowsize: "4" }, limits: { blksize: false }, want: plain({ windowsize: 4, reply: { windowsize: "4" } }) },
  { what: "windowsize withheld", asked: { blksize: "1468", windowsize: "4" }, limits: { windowsize: false }, want: plain({ blksize: 1468, reply: { blksize: "1468" } }) },
  { what: "timeout withheld: the server's timeout", asked: { timeout: "5", blksize: "1024" }, limits: { timeout: false }, want: plain({ blksize: 1024, reply: { blksize: "1024" } }) },
  { what: "tsize withheld on a read", asked: { tsize: "0" }, size: 1000, limits: { tsize: false }, want: plain() },
  { what: "tsize withheld on a write: no announced size", kind: "write", asked: { tsize: "5000" }, limits: { tsize: false }, want: plain() },
  { what: "every option withheld: no OACK", asked: { blksize: "1468", windowsize: "4", timeout: "5", tsize: "0" }, size: 10, limits: { blksize: false, windowsize: false, timeout: false, tsize: false }, want: plain() },
  { what: "explicitly allowed (true) is as unset", asked: { blksize: "1468", tsize: "0" }, size: 10, limits: { blksize: true, tsize: true }, want: plain({ blksize: 1468, reply: { blksize: "1468", tsize: "10" } }) },
  // Everything at once.
  {
    what: "all four on an octet read",
    asked: { blksize: "1428", windowsize: "16", timeout: "3", tsize: "0" },
    size: 1_000_000,
    want: plain({ blksize: 1428, windowsize: 16, timeoutMs: 3000, reply: { blksize: "1428", windowsize: "16", timeout: "3", tsize: "1000000" } }),
  },
];

for (const c of cases) {
  const kind = c.kind ?? "read";
  const mode = c.mode ?? "octet";
  test(`${kind} ${mode}: ${c.what}`, () => {
    assert.equal(granted(negotiate(kind, mode, c.asked, { ...SERVER, ...c.limits }, c.size)), c.want);
  });
}

test("the granted values are numbers, whatever the spelling asked", () => {
  const n = negotiate("read", "octet", { blksize: "01468", windowsize: "08", timeout: "2" }, SERVER);
  assert.equal([typeof n.blksize, typeof n.windowsize, typeof n.timeoutMs], ["number", "number", "number"]);
  assert.equal([n.blksize, n.windowsize], [1468, 8]);
});

test.run();
