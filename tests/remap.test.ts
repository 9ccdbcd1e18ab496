// File name rewriting (core/remap.ts) and tftpd-hpa's remap file format (core/map_file.ts):
// what each flag does, what the POSIX regex becomes, and that no rule list can hang or bloat a run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkRules, MAX_LENGTH, MAX_STEPS, rewriteName, type RewriteRule } from "../core/remap.ts";
import { ereToRegExp, MapFileError, parseMapFile } from "../core/map_file.ts";

const read = { kind: "read" as const, address: "192.0.2.169" };
const write = { kind: "write" as const, address: "192.0.2.169" };
const v6 = { kind: "read" as const, address: "2001:db8::1" };

function run(map: string, name: string, client: { kind: "read" | "write"; address: string } = read) {
  return rewriteName(parseMapFile(map), name, client);
}
const name = (map: string, input: string, client = read) => {
  const r = run(map, input, client);
  if (!r.ok) throw new Error(`refused: ${r.message}`);
  return r.filename;
};

// [map file, requested name, client, expected name or { refused: message }]
const cases: [string, string, typeof read | typeof v6 | typeof write, string | { refused: string }][] = [
  // Windows names: backslashes become slashes (g repeats while the regex matches), a leading one goes.
  ["rg \\\\ /\nr ^/ ", "\\Boot\\x86\\wdsnbp.com", read, "Boot/x86/wdsnbp.com"],
  // r alone rewrites the first match only.
  ["r \\\\ /", "a\\b\\c", read, "a/b\\c"],
  // \L lowers what follows (dnsmasq's --tftp-lowercase as a rule); \U raises, \E stops.
  ["r ^(.*)$ \\L\\1", "EFI\\Boot\\BOOTX64.EFI", read, "efi\\boot\\bootx64.efi"],
  ["r ^([a-z]+)(.*)$ \\U\\1\\E\\2", "abc.def", read, "ABC.def"],
  // \0 is the whole match; groups that did not take part are empty.
  ["r [0-9]+ <\\0>", "file42.bin", read, "file<42>.bin"],
  ["r ^(a)|(b)$ [\\1\\2]", "b", read, "[b]"],
  // \i and \x: the client's address, as text and as upper-case hex (pxelinux's C000025A-style names).
  ["r ^pxelinux\\.cfg/default$ pxelinux.cfg/\\x", "pxelinux.cfg/default", read, "pxelinux.cfg/C00002A9"],
  ["r ^ \\i/", "boot.cfg", read, "192.0.2.169/boot.cfg"],
  ["r ^ \\x/", "f", v6, "20010DB8000000000000000000000001/f"],
  ["r ^ \\i/", "f", { kind: "read", address: "::ffff:192.0.2.1" }, "192.0.2.1/f"],
  // i matches regardless of case.
  ["ri ^boot/ BOOT/", "BoOt/bcd", read, "BOOT/bcd"],
  ["r ^boot/ BOOT/", "BoOt/bcd", read, "BoOt/bcd"],
  // e ends the run after a matching rule; rules after it do not apply.
  ["re ^a b\nr ^b c", "a", read, "b"],
  ["r ^a b\nr ^b c", "a", read, "c"],
  // s starts over from the first rule.
  ["r ^x y\nrs ^a x", "a", read, "y"],
  // G only for reads, P only for writes; 4 and 6 by the client's IP version.
  ["rG ^ get-", "f", read, "get-f"],
  ["rG ^ get-", "f", write, "f"],
  ["rP ^ put-", "f", write, "put-f"],
  ["r4 ^ v4-\nr6 ^ v6-", "f", read, "v4-f"],
  ["r4 ^ v4-\nr6 ^ v6-", "f", v6, "v6-f"],
  // a refuses: with no replacement "access denied", else the replacement as the message.
  ["a ^secret", "secret/x", read, { refused: "access denied" }],
  ["a ^(secret) no\\ \\1\\ here", "secret/x", read, { refused: "no secret here" }],
  ["aP .", "x", write, { refused: "access denied" }],
  ["aP .", "x", read, "x"],
  // ~ inverts: refuse what does not match.
  ["a~ ^(boot|efi)/", "etc/passwd", read, { refused: "access denied" }],
  ["a~ ^(boot|efi)/", "boot/x", read, "boot/x"],
  // Comments, blank lines, escaped spaces and hash marks.
  ["# a comment\n\n   r  ^a\\ b  c\\#d   # trailing comment\n", "a b", read, "c#d"],
  // POSIX bracket expressions: [:class:], a backslash as a member, a leading ].
  ["rg [[:upper:]] _", "AbC", read, "_b_"],
  ["rg [\\\\] /", "a\\b", read, "a/b"],
  ["rg []x] -", "a]x", read, "a--"],
  // r without a replacement deletes the match; \\ is a backslash.
  ["r \\.bak$", "file.bak", read, "file"],
  ["r / \\\\", "a/b", read, "a\\b"],
  // {,n} is {0,n} in POSIX.
  ["r ^a{,2} x", "aaab", read, "xab"],
];

for (const [map, input, client, want] of cases) {
  test(`${JSON.stringify(map)} on ${JSON.stringify(input)} (${client.kind} from ${client.address})`, () => {
    const r = run(map, input, client);
    if (typeof want === "string") assert.equal(r, { ok: true, filename: want });
    else assert.equal(r, { ok: false, message: want.refused });
  });
}

test("a rule list that never settles stops after MAX_STEPS with a problem for the operator", () => {
  for (const map of ["rs ^a a", "rg a a", "rg x* y"]) {
    const r = run(map, "a");
    assert.is(r.ok, false, map);
    if (!r.ok) {
      assert.is(r.message, "file name remapping failed");
      assert.match(r.problem!, new RegExp(`within ${MAX_STEPS} steps \\(last at line 1\\)`));
    }
  }
});

test("a rule that grows the name stops at MAX_LENGTH, before the step bound", () => {
  const started = Date.now();
  const r = run("rg ^(.*)$ \\1\\1", "ab");
  assert.is(r.ok, false);
  if (!r.ok) assert.match(r.problem!, new RegExp(`longer than ${MAX_LENGTH}`));
  assert.ok(Date.now() - started < 1000, "doubling took too long to stop"); // not a speed assertion: a runaway would take hours
});

test("JavaScript rules: $-replacements, functions, invert, refuse with a function", () => {
  const rules: RewriteRule[] = [
    { pattern: /^(?<dir>[^/]+)\/(?<file>.+)$/, replace: "$<file>@$<dir>$$" },
    { pattern: /@/, replace: (m, c) => `[${c.kind}:${m.index}]` },
    { pattern: /xboot/, invert: true, refuse: (_m, c) => `no ${c.address}` },
  ];
  assert.equal(rewriteName(rules, "xboot/pxe.0", read), { ok: true, filename: "pxe.0[read:5]xboot$" });
  assert.equal(rewriteName(rules, "boot/pxe.0", read), { ok: false, message: "no 192.0.2.169" });
  // $1 past the group count stays literal, as String.prototype.replace has it; $` and $' are the name around the match.
  assert.equal(rewriteName([{ pattern: /b(c)/, replace: "<$`|$'|$1|$2|$12>" }], "abcd", read), { ok: true, filename: "a<a|d|c|$2|c2>d" });
  // A stateful RegExp (g) is used without its state once checked (as Emmer's constructor does).
  const g = checkRules([{ pattern: /a/g, replace: "b" }]);
  assert.equal(rewriteName(g, "aa", read), { ok: true, filename: "ba" });
  assert.equal(rewriteName(g, "aa", read), { ok: true, filename: "ba" });
});

test("POSIX ERE to JavaScript: what carries over", () => {
  const table: [string, string][] = [
    ["^a\\.b$", "^a\\.b$"],
    ["[[:digit:][:alpha:]]+", "[0-9a-zA-Z]+"],
    ["[^]a]", "[^\\]a]"],
    ["[a\\]", "[a\\\\]"],
    ["(a)\\1", "(a)\\1"],
    ["\\<word\\>", "\\b(?=\\w)word\\b(?<=\\w)"],
    ["a{,3}", "a{0,3}"],
    ["\\ \\#", "\\ \\#"],
  ];
  for (const [ere, js] of table) assert.is(ereToRegExp(ere), js, ere);
});

test("map file errors name the line and what is wrong", () => {
  const bad: [string, RegExp][] = [
    ["r a b\nrx a b", /^line 2: unknown flag "x"/],
    ["\n\nr~ a b", /^line 3: flags r and ~ cannot be combined/],
    ["ra a b", /^line 1: flags r and a cannot be combined/],
    ["as a", /^line 1: flags a and s cannot be combined/],
    ["es a", /^line 1: flags e and s cannot be combined/],
    ["r", /^line 1: the regex is missing/],
    ["r a b c", /^line 1: expected "flags regex \[replacement\]", found 4 fields/],
    ["r \\d x", /^line 1: bad regex .*\\d is not POSIX/],
    ["r (?:a) x", /^line 1: bad regex .*\(\? is not POSIX/],
    ["r [[=a=]] x", /^line 1: bad regex .*collating elements, equivalence classes\) is not supported/],
    ["r [[:foo:]] x", /^line 1: bad regex .*\[:foo:\] is not a character class/],
    ["r [abc x", /^line 1: bad regex .*unterminated \[/],
    ["r (a x", /^line 1: bad regex "\(a"/],
    ["r a \\q", /^line 1: \\q in the replacement is not an escape/],
    ["rE a b", /^line 1: flag E \(tftpd-hpa 5.3\) is not supported/],
    ["j a b", /^line 1: flag j/],
    [":label", /^line 1: labels/],
    ["rgg a b", /^line 1: gg/],
    ["GP a", /^line 1: G and P exclude each other/],
    ["46 a", /^line 1: 4 and 6 exclude each other/],
  ];
  for (const [map, message] of bad) {
    try {
      parseMapFile(map);
      assert.unreachable(`${JSON.stringify(map)} was accepted`);
    } catch (error) {
      assert.instance(error, MapFileError, String(error));
      assert.match((error as Error).message, message, map);
    }
  }
});

test("an empty map file, or one of comments only, leaves names alone", () => {
  assert.equal(parseMapFile(""), []);
  assert.equal(parseMapFile("# nothing\n   \n\t# more\r\n"), []);
  assert.is(name("# x\n", "A\\B"), "A\\B");
});

test.run();
