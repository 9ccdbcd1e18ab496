// The client CLI's pure parts: tftp:// URLs as curl reads them (cli/url.ts) and the
// progress line's text and redraw rate (cli/progress.ts), the clock an input.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseTftpUrl, UrlError } from "../cli/url.ts";
import { ProgressBar, progressLine } from "../cli/progress.ts";

const urls: [string, ReturnType<typeof parseTftpUrl>][] = [
  ["tftp://192.0.2.7/pxelinux.0", { host: "192.0.2.7", port: 69, path: "pxelinux.0", mode: undefined }],
  ["tftp://192.0.2.7:6969/a/b.bin", { host: "192.0.2.7", port: 6969, path: "a/b.bin", mode: undefined }],
  ["TFTP://boot.example/x", { host: "boot.example", port: 69, path: "x", mode: undefined }],
  ["tftp://[::1]:70/grub%20x64.efi", { host: "::1", port: 70, path: "grub x64.efi", mode: undefined }],
  ["tftp://[2001:db8::7]/%2Fabs%25", { host: "2001:db8::7", port: 69, path: "/abs%", mode: undefined }],
  ["tftp://h/notes.txt;mode=netascii", { host: "h", port: 69, path: "notes.txt", mode: "netascii" }],
  ["tftp://h/f;mode=OCTET", { host: "h", port: 69, path: "f", mode: "octet" }],
  ["tftp://h/dir/", { host: "h", port: 69, path: "dir/", mode: undefined }],
  ["tftp://h", { host: "h", port: 69, path: "", mode: undefined }],
  ["tftp://h/%C3%A9t%C3%A9", { host: "h", port: 69, path: "été", mode: undefined }],
];
for (const [text, expected] of urls) {
  test(`${text} parses`, () => assert.equal(parseTftpUrl(text), expected));
}

const bad: [string, RegExp][] = [
  ["http://h/x", /not a tftp:\/\/HOST\[:PORT\]\/PATH URL/],
  ["tftp:/h/x", /not a tftp/],
  ["tftp:///x", /has no host/],
  ["tftp://::1/x", /an IPv6 address goes in brackets/],
  ["tftp://2001:db8::7:69/x", /an IPv6 address goes in brackets/],
  ["tftp://[127.0.0.1]/x", /brackets are for IPv6/],
  ["tftp://h:0/x", /port must be 1 to 65535, not "0"/],
  ["tftp://h:99999/x", /port must be 1 to 65535/],
  ["tftp://h:6x/x", /port must be 1 to 65535, not "6x"/],
  ["tftp://h/x;mode=mail", /mode must be octet or netascii, not "mail"/],
  ["tftp://h/50%", /bad percent-escape/],
  ["tftp://h/a%00b", /NUL/],
];
for (const [text, message] of bad) {
  test(`${text} is refused: ${message.source}`, () => {
    assert.throws(() => parseTftpUrl(text), (e: unknown) => e instanceof UrlError && message.test((e as Error).message));
  });
}

test("the progress line with a known total: bar, percent, bytes, rate and ETA, within the width", () => {
  const line = progressLine("vmlinuz", 6 * 1024 * 1024, 12 * 1024 * 1024, 2, 80);
  assert.is(line, "vmlinuz [##########         ]  50%   6.0 MiB / 12.0 MiB    3.0 MiB/s  ETA 00:02");
  assert.ok(line.length < 80, `${line.length} columns`);
  const done = progressLine("vmlinuz", 12 * 1024 * 1024, 12 * 1024 * 1024, 4, 80, true);
  assert.is(done, "vmlinuz [####################] 100%  12.0 MiB / 12.0 MiB    3.0 MiB/s  in 4.0 s");
  assert.match(progressLine("x", 0, 100, 0, 80), /ETA --:--$/);
  assert.match(progressLine("x", 10, 100 * 1024 ** 2, 1, 80), /ETA \d+:\d\d:\d\d$/, "hours when it is that slow");
});

test("the progress line without a total: bytes and rate; a narrow terminal gets no bar, a long name is cut", () => {
  assert.is(progressLine("notes.txt", 2048, undefined, 2, 80), "notes.txt  2.0 KiB  1.0 KiB/s");
  assert.is(progressLine("notes.txt", 2048, undefined, 2, 80, true), "notes.txt  2.0 KiB  1.0 KiB/s  in 2.0 s");
  const narrow = progressLine("f", 50, 100, 1, 40);
  assert.not.match(narrow, /\[/);
  assert.ok(narrow.length < 40, narrow);
  const long = progressLine("a-very-long-file-name-that-goes-on-and-on.img", 1, 2, 1, 80);
  assert.ok(long.startsWith("…"), long);
  assert.ok(long.length < 80, long);
});

test("the bar redraws at most ten times a second, in place, and ends with one final line", () => {
  let now = 0;
  const out: string[] = [];
  const bar = new ProgressBar({ write: (t: string) => out.push(t), columns: 80 }, "f", () => now);
  for (let i = 1; i <= 100; i++) {
    now += 10; // a step every 10 ms for one second
    bar.update(i * 1000, 100_000);
  }
  assert.is(out.length, 10, "ten redraws in one second");
  assert.ok(out.every((t) => t.startsWith("\r") && t.endsWith("\x1b[K")), "each redraw returns to the line's start and clears its rest");
  bar.finish();
  // deno-lint-ignore no-control-regex -- ANSI terminal escapes (ESC)
  assert.match(out[out.length - 2], /100% .* in 1\.0 s\x1b\[K$/);
  assert.is(out[out.length - 1], "\n");
  bar.fail(); // after the end: nothing more
  assert.is(out.length, 12);
});

test("a failure ends a drawn line, so that the error starts on a line of its own; nothing when nothing was drawn", () => {
  const out: string[] = [];
  const bar = new ProgressBar({ write: (t: string) => out.push(t) }, "f", () => 0);
  bar.fail();
  assert.equal(out, []);
  const drawn: string[] = [];
  const second = new ProgressBar({ write: (t: string) => drawn.push(t) }, "f", () => 0);
  second.update(10, 100);
  second.fail();
  assert.is(drawn[drawn.length - 1], "\n");
});

test.run();
