// The engine's rewrite step and option-limits hook, on the fake network: what handlers see,
// what the client gets, and what the operator hears when a rule or a hook is at fault.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeData, encodeRequest } from "../core/codec.ts";
import type { Packet } from "../core/packet.ts";
import type { RequestContext } from "../core/routes.ts";
import type { TransferEvent } from "../core/events.ts";
import type { PolicyContext } from "../core/policy.ts";
import { parseMapFile } from "../core/map_file.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

const first = (inbox: { data: Uint8Array; port: number }[]) => ({ ...(decode(inbox[0].data) as Packet), from: inbox[0].port }) as Packet & { from: number };

test("routes match the rewritten name; handlers get it as filename and the client's as requested; the event says both", async () => {
  const seen: RequestContext[] = [];
  const events: TransferEvent[] = [];
  const { net } = await fakeServer((app) => app.read("boot/*", (ctx) => (seen.push(ctx), "bcd")), {
    rewrite: parseMapFile("rg \\\\ /\nr ^/\nri ^boot/ boot/"),
    onTransfer: (e) => events.push(e),
  });
  const client = await fakePeer(net, "10.0.0.7");
  client.send(encodeRequest(1, "\\Boot\\BCD", "octet", {}), 69);
  await net.deliver();
  const d = first(client.take()) as Packet & { from: number; block: number };
  assert.equal([d.op, d.block], [3, 1]);
  client.send(encodeAck(1), d.from);
  await net.deliver();
  assert.is(seen.length, 1);
  assert.equal([seen[0].filename, seen[0].requested], ["boot/BCD", "\\Boot\\BCD"]);
  assert.equal([events[0].outcome, events[0].filename, events[0].requested], ["ok", "boot/BCD", "\\Boot\\BCD"]);
});

test("a request refused after its rewrite is logged under both names", async () => {
  const events: TransferEvent[] = [];
  const { net } = await fakeServer((app) => app.read("known", () => "x"), { rewrite: parseMapFile("r ^old$ new"), onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "old", "octet", {}), 69);
  await net.deliver();
  client.send(encodeRequest(1, "other", "octet", {}), 69);
  await net.deliver();
  assert.equal(events.map((e) => [e.filename, e.requested, e.error?.code]), [["new", "old", 1], ["other", undefined, 1]]);
});

test("a late copy of a rewritten upload's WRQ during its dally is still a repeat (the transfer keeps the client's name)", async () => {
  const events: TransferEvent[] = [];
  const { net, app } = await fakeServer((app) => app.write("uploads/*", async ({ body }) => void (await new Response(body).arrayBuffer())), {
    rewrite: parseMapFile("r ^ uploads/"),
    onTransfer: (e) => events.push(e),
  });
  const client = await fakePeer(net);
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  const ack0 = first(client.take());
  client.send(encodeData(1, bytesOf(10)), ack0.from);
  await net.deliver();
  assert.equal(client.take().map((m) => decode(m.data).op), [4]);
  await net.advance(100);
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  assert.equal(client.take(), [], "the copy was answered as a new upload");
  assert.is(app.engine!.load, 1, "the dally was ended");
  await net.advance(5000);
  assert.equal(events.map((e) => [e.outcome, e.filename, e.requested]), [["ok", "uploads/up", "up"]]);
});

test("without rules, requested is the filename and events carry no requested", async () => {
  const seen: RequestContext[] = [];
  const events: TransferEvent[] = [];
  const { net } = await fakeServer((app) => app.read("*", (ctx) => (seen.push(ctx), "x")), { onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "a\\b", "octet", {}), 69);
  await net.deliver();
  client.send(encodeAck(1), first(client.take()).from);
  await net.deliver();
  assert.equal([seen[0].filename, seen[0].requested], ["a\\b", "a\\b"]);
  assert.is(events[0].requested, undefined);
});

test("a refusing rule sends ERROR 2 with its message before any handler runs, reads and writes alike", async () => {
  let handled = 0;
  const events: TransferEvent[] = [];
  const { net } = await fakeServer((app) => {
    app.read("*", () => (handled++, "x"));
    app.write("*", () => void handled++);
  }, { rewrite: parseMapFile("a ^secret/\naP ^ro/ read-only\\ tree"), onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net);
  for (const [op, name, message] of [[1, "secret/key", "access denied"], [2, "ro/x", "read-only tree"], [2, "secret/y", "access denied"]] as const) {
    client.send(encodeRequest(op, name, "octet", {}), 69);
    await net.deliver();
    const e = first(client.take()) as Packet & { code: number; message: string };
    assert.equal([e.op, e.code, e.message], [5, 2, message], name);
  }
  assert.is(handled, 0);
  assert.equal(events.map((e) => [e.kind, e.outcome, e.error?.code]), [["read", "failed", 2], ["write", "failed", 2], ["write", "failed", 2]]);
});

test("a rule list that loops refuses the request (ERROR 2) and tells the operator which rule", async () => {
  const errors: string[] = [];
  const { net } = await fakeServer((app) => app.read("*", () => "x"), {
    rewrite: parseMapFile("r ^b a\nrs ^a b"),
    onError: (e, context) => errors.push(`${context}: ${(e as Error).message}`),
  });
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "a", "octet", {}), 69);
  await net.deliver();
  const e = first(client.take()) as Packet & { code: number; message: string };
  assert.equal([e.op, e.code, e.message], [5, 2, "file name remapping failed"]);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /^rewrite: rewrite rules did not settle within 1000 steps \(last at line \d\) for "a"$/);
});

test("bad rewrite rules are refused when the server is made, not at the first request", async () => {
  const { Emmer } = await import("../drivers/app.ts");
  assert.throws(() => new Emmer({ rewrite: [{ pattern: /a/, invert: true, replace: "b" }] }), /rewrite rule 1: an inverted rule cannot rewrite/);
  assert.throws(() => new Emmer({ rewrite: [{ pattern: "a" as unknown as RegExp }] }), /pattern must be a RegExp/);
  assert.throws(() => new Emmer({ optionLimits: 5 as unknown as () => undefined }), /optionLimits must be a function/);
});

test("the optionLimits hook sees the request and its limits reach the OACK, per client", async () => {
  const asked: PolicyContext[] = [];
  const { net } = await fakeServer((app) => app.read("*", () => bytesOf(5000)), {
    maxBlksize: 1400,
    rewrite: parseMapFile("r ^/"),
    optionLimits: (ctx) => {
      asked.push(ctx);
      if (ctx.address.startsWith("10.")) return { maxBlksize: 1024, windowsize: false, tsize: false };
      if (ctx.filename.endsWith(".efi")) return { maxBlksize: 9000 }; // above the server's cap: the server's wins
    },
  });
  const capped = await fakePeer(net, "10.0.0.9");
  const free = await fakePeer(net, "192.0.2.1");
  const opts = { blksize: "1468", windowsize: "8", tsize: "0" };
  capped.send(encodeRequest(1, "/x.efi", "octet", opts), 69);
  free.send(encodeRequest(1, "/x.efi", "octet", opts), 69);
  await net.deliver();
  const a = first(capped.take()) as Packet & { options: Record<string, string> };
  const b = first(free.take()) as Packet & { options: Record<string, string> };
  assert.equal([a.op, a.options], [6, { blksize: "1024" }]);
  assert.equal([b.op, b.options], [6, { blksize: "1400", windowsize: "8", tsize: "5000" }]);
  assert.equal(asked.map((c) => [c.kind, c.address, c.filename, c.requested, c.mode, c.options.blksize]), [
    ["read", "10.0.0.9", "x.efi", "/x.efi", "octet", "1468"],
    ["read", "192.0.2.1", "x.efi", "/x.efi", "octet", "1468"],
  ]);
});

test("the hook applies to uploads: a capped blksize is what the upload runs at", async () => {
  let got = new Uint8Array(0);
  const { net } = await fakeServer((app) => app.write("*", async ({ body }) => void (got = new Uint8Array(await new Response(body).arrayBuffer()))), {
    optionLimits: (ctx) => (ctx.kind === "write" ? { maxBlksize: 600 } : undefined),
  });
  const client = await fakePeer(net);
  client.send(encodeRequest(2, "up", "octet", { blksize: "1468" }), 69);
  await net.deliver();
  const o = first(client.take()) as Packet & { from: number; options: Record<string, string> };
  assert.equal([o.op, o.options], [6, { blksize: "600" }]);
  const body = bytesOf(900);
  client.send(encodeData(1, body.subarray(0, 600)), o.from);
  await net.deliver();
  client.send(encodeData(2, body.subarray(600)), o.from);
  await net.deliver();
  await net.deliver();
  const acks = client.take().map((m) => decode(m.data) as Packet & { block: number });
  assert.equal(acks.map((p) => [p.op, p.block]), [[4, 1], [4, 2]]);
  assert.equal(got, body);
});

test("a hook that throws or returns nonsense fails the request with ERROR 0 and tells the operator; a TftpError is sent as is", async () => {
  const errors: string[] = [];
  const { TftpError } = await import("../core/errors.ts");
  const { net } = await fakeServer((app) => app.read("*", () => "x"), {
    onError: (e, context) => errors.push(`${context}: ${(e as Error).message}`),
    optionLimits: (ctx) => {
      if (ctx.filename === "throws") throw new Error("inventory down");
      if (ctx.filename === "refuses") throw new TftpError(2, "not for you");
      return { maxBlksize: 2 };
    },
  });
  const client = await fakePeer(net);
  const answers: [number, string][] = [];
  for (const name of ["throws", "refuses", "nonsense"]) {
    client.send(encodeRequest(1, name, "octet", {}), 69);
    await net.deliver();
    const e = first(client.take()) as Packet & { code: number; message: string };
    answers.push([e.code, e.message]);
  }
  assert.equal(answers, [[0, "internal server error"], [2, "not for you"], [0, "internal server error"]]);
  assert.equal(errors, [
    "read handler for throws: inventory down",
    "read handler for nonsense: optionLimits: maxBlksize must be an integer from 8 to 65464, not 2",
  ]);
});

test("a hook that never settles is cut off by handlerTimeout like a handler", async () => {
  const { net } = await fakeServer((app) => app.read("*", () => "x"), { handlerTimeout: 2, optionLimits: () => new Promise(() => {}) });
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  assert.equal(client.take(), []);
  await net.advance(1999);
  await net.deliver();
  assert.equal(client.take(), [], "cut off early");
  await net.advance(1);
  await net.deliver();
  const e = first(client.take()) as Packet & { code: number; message: string };
  assert.equal([e.op, e.code, e.message], [5, 0, "handler timed out"]);
});

test("a policy's rollover reaches the transfer: after block 65535 comes 1, and the data arrives whole", async () => {
  const body = bytesOf(65_600 * 8 + 5, 21); // blksize 8: past block 65535
  const { net } = await fakeServer((app) => app.read("big", () => body), { optionLimits: () => ({ rollover: 1 }) });
  const client = await fakePeer(net, "10.0.0.9");
  client.send(encodeRequest(1, "big", "octet", { blksize: "8", windowsize: "64" }), 69);
  await net.deliver();
  const oack = first(client.take());
  assert.equal([oack.op, (oack as { options?: Record<string, string> }).options], [6, { blksize: "8", windowsize: "64" }], "rollover is not announced unasked");
  client.send(encodeAck(0), oack.from);
  const numbers: number[] = [];
  const parts: Uint8Array[] = [];
  for (let guard = 0; guard < 5_000; guard++) {
    await net.deliver();
    const got = client.take().map((m) => decode(m.data) as Packet & { block: number; payload: Uint8Array });
    if (got.length === 0) break;
    for (const d of got) (numbers.push(d.block), parts.push(d.payload.slice()));
    client.send(encodeAck(got[got.length - 1].block), oack.from);
  }
  assert.is(numbers.length, 65_601);
  assert.equal(numbers.slice(65_533, 65_537), [65_534, 65_535, 1, 2]);
  assert.ok(!numbers.includes(0), "block 0 is never sent");
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
  assert.equal(whole, body);
});

test.run();
