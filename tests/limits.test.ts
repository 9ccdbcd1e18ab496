// Abuse limits, on a fake clock: amplification by spoofed requests, requests per
// address, handlers that never answer, the rate limiter's own memory.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Emmer, EmmerOptions } from "../drivers/app.ts";
import { decode, encodeData, encodeError, encodeRequest } from "../core/codec.ts";
import { RateLimiter } from "../core/rate_limit.ts";
import { INITIAL_RETRIES } from "../core/session.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

const setup = (configure: (app: Emmer) => void, options: EmmerOptions = {}) => fakeServer(configure, { retries: 5, ...options });

const op = (d: Uint8Array) => (decode(d) as { op: number }).op;

type Net = Awaited<ReturnType<typeof setup>>["net"];

/** A client's WRQ for "up" and its first DATA block; returns the client and the transfer's port. */
async function startUpload(net: Net, block: Uint8Array) {
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port; // ACK 0
  client.send(encodeData(1, block), port);
  await net.deliver();
  return { client, port };
}

for (const [name, options] of [["no options", {}], ["blksize 65464 and windowsize 64", { blksize: "65464", windowsize: "64" }]] as const) {
  test(`amplification (${name}): a spoofed request gets one packet and ${INITIAL_RETRIES} copies, then nothing`, async () => {
    const { net, app } = await setup((app) => app.read("*", () => bytesOf(10_000_000)));
    const victim = await fakePeer(net, "127.0.0.9"); // never answers: its address was spoofed
    const request = encodeRequest(1, "kernel.img", "octet", options);
    victim.send(request, 69);
    await net.deliver();
    for (let i = 0; i < 40; i++) {
      await net.advance(500);
      await net.deliver();
    }
    const got = victim.take();
    const bytesOut = got.reduce((n, m) => n + m.data.length, 0);
    // The packet, its copies, and the short ERROR that ends the transfer.
    assert.is(got.length, 1 + INITIAL_RETRIES + 1, "packets sent to the victim");
    assert.ok(new Set(got.slice(0, -1).map((m) => op(m.data))).size === 1, "always the same packet");
    assert.is(op(got[got.length - 1].data), 5);
    // With the RFC 1350 default the one packet is a 516-byte DATA; with options, a short OACK.
    const bound = (1 + INITIAL_RETRIES) * (4 + 512) + 16;
    assert.ok(bytesOut <= bound, `${bytesOut} bytes out for a ${request.length}-byte request`);
    console.log(`    ${name}: ${bytesOut} bytes out / ${request.length} bytes in = ${(bytesOut / request.length).toFixed(1)}x`);
    assert.is(app.engine!.load, 0, "the session was not released");
  });
}

test("requests per address: beyond the rate, silence (a boot ROM retries on silence, not after an ERROR); other addresses and later requests are served", async () => {
  const events: { outcome: string; error?: { message: string }; dropped?: number }[] = [];
  const { net } = await setup((app) => app.read("*", () => "x"), { maxRequestsPerSecond: 5, onTransfer: (e) => events.push(e) });
  const flood = await Promise.all(Array.from({ length: 6 }, () => fakePeer(net, "127.0.0.2"))); // one address, six ports
  const other = await fakePeer(net, "127.0.0.3");
  flood.forEach((f, i) => f.send(encodeRequest(1, `f${i}`, "octet", {}), 69));
  other.send(encodeRequest(1, "g", "octet", {}), 69);
  await net.deliver();
  const answers = flood.flatMap((f) => f.take()).map((m) => decode(m.data) as { op: number; message?: string });
  assert.equal(answers.map((a) => a.op), [3, 3, 3, 3, 3], "five served, the sixth dropped unanswered");
  assert.equal(events.map((e) => [e.outcome, e.error?.message, e.dropped]), [["failed", "too many requests", 1]], "the operator was not told");
  assert.is(op(other.take()[0].data), 3);
  await net.advance(1000);
  const later = await fakePeer(net, "127.0.0.2");
  later.send(encodeRequest(1, "later", "octet", {}), 69);
  await net.deliver();
  assert.is(op(later.take()[0].data), 3, "a request a second later was not served: the address's bucket did not refill at 5 per second");
});

test("a flood of dropped requests is reported at most once a second, with a count, and nothing is lost from the count", async () => {
  const events: { error?: { message: string }; dropped?: number; filename: string }[] = [];
  const { net, app } = await setup((app) => app.read("*", () => "x"), { maxRequestsPerSecond: 1, onTransfer: (e) => events.push(e) });
  for (let i = 0; i < 10; i++) {
    const peer = await fakePeer(net, "127.0.0.2"); // a port of its own: not a repeat of an earlier request
    peer.send(encodeRequest(1, `f${i}`, "octet", {}), 69);
    await net.deliver();
    await net.advance(150); // 1.5 s in all: one token comes back at 1 s
  }
  const dropped = events.filter((e) => e.dropped !== undefined);
  // f0 served; f1 dropped and reported at once; f2..f6 counted; f7 (at 1.05 s) served; f8, f9 counted.
  assert.equal(dropped.map((e) => [e.filename, e.dropped]), [["f1", 1], ["f6", 5]]);
  await net.advance(1000);
  assert.equal(events.filter((e) => e.dropped !== undefined).map((e) => [e.filename, e.dropped]), [["f1", 1], ["f6", 5], ["f9", 2]], "the last count was lost");
  assert.is(events.filter((e) => e.dropped === undefined).length, 0, "a served request reported before its end");
  void app;
});

test("a read handler that never settles: ERROR 0 after handlerTimeout, and nothing is held", async () => {
  const { net, app } = await setup((app) => app.read("*", () => new Promise(() => {})), { handlerTimeout: 5 });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "stuck", "octet", {}), 69);
  await net.deliver();
  assert.is(app.engine!.load, 1);
  await net.advance(4999);
  await net.deliver();
  assert.equal(client.take(), []);
  await net.advance(1);
  await net.deliver();
  const [e] = client.take().map((m) => decode(m.data) as { op: number; message: string });
  assert.equal([e.op, e.message], [5, "handler timed out"]);
  assert.is(app.engine!.load, 0);
});

test("a write handler whose verdict never comes: ERROR 0 instead of the last ACK, and its signal aborted", async () => {
  let signal: AbortSignal | null = null;
  const { net, app } = await setup((app) =>
    app.write("*", async (ctx) => {
      signal = ctx.signal;
      await new Response(ctx.body).arrayBuffer();
      await new Promise(() => {});
    }), { handlerTimeout: 3 });
  const { client } = await startUpload(net, bytesOf(100));
  assert.equal(client.take(), [], "the last ACK came before the verdict");
  assert.is(signal!.aborted, false, "aborted before the deadline");
  await net.advance(3000);
  await net.deliver();
  const [e] = client.take().map((m) => decode(m.data) as { op: number; message: string });
  assert.equal([e.op, e.message], [5, "handler timed out"]);
  // The client was told the upload failed: a handler still at work must not commit it.
  assert.is(signal!.aborted, true, "the handler was not told");
  assert.match(String((signal!.reason as Error).message), "handler timed out");
  assert.is(app.engine!.load, 0);
});

test("a client that abandons an upload midway: the handler's signal is aborted and its body fails", async () => {
  let signal: AbortSignal | null = null;
  let bodyError = "";
  const { net, app } = await setup((app) =>
    app.write("*", async (ctx) => {
      signal = ctx.signal;
      try {
        await new Response(ctx.body).arrayBuffer();
      } catch (e) {
        bodyError = (e as Error).message;
      }
    }));
  const { client, port } = await startUpload(net, bytesOf(512));
  assert.is(signal!.aborted, false);
  client.send(encodeError(0, "cancelled by the user"), port);
  await net.deliver();
  assert.is(signal!.aborted, true, "the handler was not told");
  assert.match(bodyError, "cancelled by the user");
  assert.is(app.engine!.load, 0);
});

test("the rate limiter forgets idle addresses first and stays bounded", () => {
  const r = new RateLimiter(10, 100);
  for (let i = 0; i < 1000; i++) assert.ok(r.take(`10.0.${i >> 8}.${i & 255}`, i));
  assert.ok(r.size <= 100, `${r.size} addresses kept`);
  for (let i = 0; i < 10; i++) r.take("busy", 2000);
  assert.not.ok(r.take("busy", 2000), "an empty bucket gave a token");
  assert.ok(r.take("busy", 2100), "a tenth of a second refills one token at 10/s");
});

test.run();
