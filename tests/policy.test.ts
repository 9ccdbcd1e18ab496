// Per-request option policy: negotiate() under per-request limits (a table), address ranges,
// the CLI's client rules and the MTU cap. All pure.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { negotiate, type NegotiationLimits } from "../core/options.ts";
import { inRange, parseAddress, parseRange } from "../core/cidr.ts";
import { blksizeForMtu, checkLimits, combineLimits, limitsFor, parseClientRule } from "../core/policy.ts";
import type { Mode, Options } from "../core/packet.ts";

const server: NegotiationLimits = { maxBlksize: 65464, maxWindowsize: 64, timeoutMs: 1000 };

// [what, kind, mode, requested options, limits (merged over `server`), body size, expected OACK or null, expected blksize, windowsize, timeoutMs]
type Row = [string, "read" | "write", Mode, Options, Partial<NegotiationLimits>, number | undefined, Options | null, number, number, number];
const rows: Row[] = [
  ["no options", "read", "octet", {}, {}, 100, null, 512, 1, 1000],
  ["all granted", "read", "octet", { blksize: "1468", windowsize: "8", tsize: "0", timeout: "3" }, {}, 100,
    { blksize: "1468", windowsize: "8", tsize: "100", timeout: "3" }, 1468, 8, 3000],
  ["blksize range: below 8 ignored", "read", "octet", { blksize: "7" }, {}, 1, null, 512, 1, 1000],
  ["blksize range: 8 granted", "read", "octet", { blksize: "8" }, {}, 1, { blksize: "8" }, 8, 1, 1000],
  ["blksize above 65464 answered with 65464", "read", "octet", { blksize: "70000" }, {}, 1, { blksize: "65464" }, 65464, 1, 1000],
  ["blksize not a number ignored", "read", "octet", { blksize: "1e3" }, {}, 1, null, 512, 1, 1000],
  ["maxBlksize caps", "read", "octet", { blksize: "1468" }, { maxBlksize: 1024 }, 1, { blksize: "1024" }, 1024, 1, 1000],
  ["maxBlksize above the request leaves it", "read", "octet", { blksize: "1468" }, { maxBlksize: 4096 }, 1, { blksize: "1468" }, 1468, 1, 1000],
  ["maxWindowsize caps", "read", "octet", { windowsize: "16" }, { maxWindowsize: 4 }, 1, { windowsize: "4" }, 512, 4, 1000],
  ["windowsize 0 ignored", "read", "octet", { windowsize: "0" }, {}, 1, null, 512, 1, 1000],
  ["windowsize above 65535 ignored", "read", "octet", { windowsize: "65536" }, {}, 1, null, 512, 1, 1000],
  ["blksize withheld: 512, not in the OACK", "read", "octet", { blksize: "1468", tsize: "0" }, { blksize: false }, 9, { tsize: "9" }, 512, 1, 1000],
  ["windowsize withheld: lock-step", "read", "octet", { windowsize: "8", blksize: "1024" }, { windowsize: false }, 9, { blksize: "1024" }, 1024, 1, 1000],
  ["tsize withheld", "read", "octet", { tsize: "0", blksize: "1024" }, { tsize: false }, 9, { blksize: "1024" }, 1024, 1, 1000],
  ["timeout withheld: the server's own", "read", "octet", { timeout: "5" }, { timeout: false }, 9, null, 512, 1, 1000],
  ["everything withheld: no OACK at all", "read", "octet", { blksize: "1468", windowsize: "8", tsize: "0", timeout: "2" },
    { blksize: false, windowsize: false, tsize: false, timeout: false }, 9, null, 512, 1, 1000],
  ["true is the same as unset", "read", "octet", { tsize: "0" }, { tsize: true }, 9, { tsize: "9" }, 512, 1, 1000],
  ["tsize in netascii is not answered (size on the wire unknown)", "read", "netascii", { tsize: "0", blksize: "1024" }, {}, 9, { blksize: "1024" }, 1024, 1, 1000],
  ["tsize of a body of unknown size is not answered", "read", "octet", { tsize: "0" }, {}, undefined, null, 512, 1, 1000],
  ["write: tsize echoed", "write", "octet", { tsize: "1234" }, {}, undefined, { tsize: "1234" }, 512, 1, 1000],
  ["write: tsize withheld is not echoed", "write", "octet", { tsize: "1234" }, { tsize: false }, undefined, null, 512, 1, 1000],
  ["write: caps apply to uploads too", "write", "octet", { blksize: "8192", windowsize: "8" }, { maxBlksize: 1432, maxWindowsize: 2 }, undefined,
    { blksize: "1432", windowsize: "2" }, 1432, 2, 1000],
  ["timeout out of range ignored", "read", "octet", { timeout: "256" }, {}, 1, null, 512, 1, 1000],
  ["rollover asked: answered as asked", "read", "octet", { rollover: "1" }, {}, 1, { rollover: "1" }, 512, 1, 1000],
  ["rollover asked beats the policy's", "read", "octet", { rollover: "0" }, { rollover: 1 }, 1, { rollover: "0" }, 512, 1, 1000],
  ["rollover of another value ignored", "read", "octet", { rollover: "2" }, {}, 1, null, 512, 1, 1000],
  ["write: rollover not acknowledged (the client numbers the blocks)", "write", "octet", { rollover: "1" }, {}, undefined, null, 512, 1, 1000],
];

// [requested rollover, the policy's, the rollover used]
for (const [asked, policy, used] of [[undefined, undefined, 0], [undefined, 1, 1], ["1", undefined, 1], ["0", 1, 0], ["x", 1, 1]] as const) {
  test(`negotiate: rollover used: asked ${asked}, policy ${policy} -> ${used}`, () => {
    const requested: Options = asked === undefined ? {} : { rollover: asked };
    assert.is(negotiate("read", "octet", requested, { ...server, ...(policy === undefined ? {} : { rollover: policy }) }, 1).rollover, used);
  });
}

for (const [what, kind, mode, requested, limits, size, reply, blksize, windowsize, timeoutMs] of rows) {
  test(`negotiate: ${what}`, () => {
    const n = negotiate(kind, mode, requested, { ...server, ...limits }, size);
    assert.equal(n.reply, reply);
    assert.equal([n.blksize, n.windowsize, n.timeoutMs], [blksize, windowsize, timeoutMs]);
    if (kind === "write") assert.is(n.announcedSize, limits.tsize === false ? undefined : requested.tsize ? Number(requested.tsize) : undefined);
  });
}

test("addresses: IPv4, IPv6 in every spelling, mapped IPv4, zones; garbage is null", () => {
  assert.equal(parseAddress("10.1.2.3"), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3) });
  assert.equal(parseAddress("::ffff:10.1.2.3"), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3) });
  assert.equal(parseAddress("::FFFF:0a01:0203"), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3) });
  const one = parseAddress("::1")!;
  assert.is(one.family, 6);
  assert.equal([...one.bytes], [...Array(15).fill(0), 1]);
  assert.equal(parseAddress("0:0:0:0:0:0:0:1"), one);
  assert.equal(parseAddress("fe80::1%eth0")?.bytes[0], 0xfe);
  assert.equal([...parseAddress("2001:db8::a:b")!.bytes].slice(-4), [0, 0xa, 0, 0xb]);
  for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", ":::", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "host.example"]) {
    assert.is(parseAddress(bad), null, bad);
  }
});

test("ranges: prefixes on byte and bit boundaries, both families, mapped clients in IPv4 ranges", () => {
  const table: [string, string, boolean][] = [
    ["10.0.0.0/8", "10.255.1.2", true],
    ["10.0.0.0/8", "11.0.0.0", false],
    ["10.0.0.0/8", "::ffff:10.9.9.9", true],
    ["192.168.4.0/22", "192.168.7.255", true],
    ["192.168.4.0/22", "192.168.8.0", false],
    ["192.168.4.0/22", "192.168.3.255", false],
    ["0.0.0.0/0", "203.0.113.9", true],
    ["0.0.0.0/0", "2001:db8::1", false],
    ["127.0.0.1", "127.0.0.1", true],
    ["127.0.0.1", "127.0.0.2", false],
    ["2001:db8::/32", "2001:db8:ffff::1", true],
    ["2001:db8::/32", "2001:db9::1", false],
    ["2001:db8::/33", "2001:db8:7fff::", true],
    ["2001:db8::/33", "2001:db8:8000::", false],
    ["::/0", "::1", true],
    ["::/0", "10.0.0.1", false],
    ["::ffff:10.0.0.0/104", "10.1.1.1", true],
    ["::1", "::1", true],
    ["10.0.0.0/8", "not an address", false],
  ];
  for (const [range, address, want] of table) assert.is(inRange(parseRange(range), address), want, `${address} in ${range}`);
  for (const [bad, message] of [["10.0.0.0/33", /prefix length must be from 0 to 32/], ["::/129", /from 0 to 128/], ["10.0.0.0/x", /prefix/],
    ["::ffff:10.0.0.0/8", /from 96 to 128/], ["nonsense/8", /"nonsense" is not an IP address/]] as const) {
    assert.throws(() => parseRange(bad), message, bad);
  }
});

test("MTU: blksize fits one datagram (IPv4 32 bytes of headers, IPv6 52)", () => {
  assert.is(blksizeForMtu(1500, "10.0.0.1"), 1468);
  assert.is(blksizeForMtu(1500, "::ffff:10.0.0.1"), 1468);
  assert.is(blksizeForMtu(1500, "2001:db8::1"), 1448);
  assert.is(blksizeForMtu(1280, "2001:db8::1"), 1228);
  assert.is(blksizeForMtu(576, "10.0.0.1"), 544);
  assert.is(blksizeForMtu(68, "10.0.0.1"), 36);
  assert.is(blksizeForMtu(65535, "10.0.0.1"), 65464);
});

test("client rules: parsed, matched first-wins, MTU applied, bad ones say why", () => {
  const rules = [
    parseClientRule("10.1.0.0/16:blksize=512,windowsize=no"),
    parseClientRule("10.0.0.0/8:blksize=1024,windowsize=1,tsize=no,timeout=no"),
    parseClientRule("2001:db8::/32:mtu=1280"),
    parseClientRule("::1:blksize=no,tsize=yes"),
    parseClientRule("192.0.2.0/24:rollover=1"),
  ];
  assert.equal(rules[1].limits, { maxBlksize: 1024, maxWindowsize: 1, tsize: false, timeout: false });
  assert.equal(limitsFor("10.1.2.3", rules), { maxBlksize: 512, windowsize: false });
  assert.equal(limitsFor("10.2.2.3", rules), { maxBlksize: 1024, maxWindowsize: 1, tsize: false, timeout: false });
  assert.equal(limitsFor("2001:db8::5", rules), { maxBlksize: 1228 });
  assert.equal(limitsFor("::1", rules), { blksize: false });
  assert.equal(limitsFor("192.0.2.1", rules), { rollover: 1 });
  assert.equal(limitsFor("198.51.100.1", rules), {});
  // The global MTU caps every client, a rule's MTU its range; the lower cap wins.
  assert.equal(limitsFor("192.0.2.1", rules, 1500), { maxBlksize: 1468, rollover: 1 });
  assert.equal(limitsFor("10.2.2.3", rules, 1500), { maxBlksize: 1024, maxWindowsize: 1, tsize: false, timeout: false });
  assert.equal(limitsFor("2001:db8::5", rules, 9000), { maxBlksize: 1228 });
  assert.equal(limitsFor("2001:db8::5", rules, 1000), { maxBlksize: 948 });
  for (const [bad, message] of [
    ["10.0.0.0/8", /expected RANGE:key=value/],
    ["10.0.0.0/8:blksize=7", /blksize takes 8..65464 or no, not "7"/],
    ["10.0.0.0/8:windowsize=0", /windowsize takes 1..65535 or no/],
    ["10.0.0.0/8:tsize=1", /tsize takes yes or no/],
    ["10.0.0.0/8:mtu=60", /mtu takes 68..65535/],
    ["10.0.0.0/8:speed=1", /unknown key "speed"/],
    ["10.0.0.0/8:rollover=2", /rollover takes 0 or 1, not "2"/],
    ["10.0.0.0/8:blksize", /expected RANGE:key=value/],
    ["10.0.0.0/8:tsize=no,blksize", /"blksize" is not key=value/],
    ["10.0.0.0/8:a=b=c", /"a=b=c" is not key=value/],
    ["10.0.0.300/8:tsize=no", /"10.0.0.300" is not an IP address/],
  ] as const) {
    assert.throws(() => parseClientRule(bad), message, bad);
  }
});

test("hook results are checked and combined", () => {
  assert.equal(checkLimits({ maxBlksize: 1024, tsize: false }), { maxBlksize: 1024, tsize: false });
  assert.throws(() => checkLimits({ maxBlksize: 4 }), /maxBlksize must be an integer from 8 to 65464, not 4/);
  assert.throws(() => checkLimits({ maxWindowsize: 1.5 }), /maxWindowsize must be an integer from 1 to 65535/);
  assert.throws(() => checkLimits({ tsize: "no" as unknown as boolean }), /tsize must be true or false/);
  assert.throws(() => checkLimits(5 as unknown as object), /must return an object or nothing/);
  assert.equal(combineLimits({ maxBlksize: 1024, tsize: false }, { maxBlksize: 512, maxWindowsize: 4, windowsize: true }), { maxBlksize: 512, maxWindowsize: 4, tsize: false });
});

test.run();
