// Transfer events on the fake clock, as metrics and logs see them: when a transfer
// starts, how long its handler took, why a request was refused, and an upload's
// event at its last ACK (not at the end of its dally), which a shutdown then cannot
// turn into a failure. Also the metrics registry these events feed, and --port-range.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeData, encodeRequest } from "../core/codec.ts";
import type { Packet } from "../core/packet.ts";
import type { TransferEvent, TransferStart } from "../core/events.ts";
import { TftpError } from "../core/errors.ts";
import { DALLY_TIMEOUTS } from "../core/session.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

const packets = (inbox: { data: Uint8Array; port: number }[]) => inbox.map((m) => ({ ...(decode(m.data) as Packet), from: m.port }));

/** A server on the fake clock that records every event. */
async function recorded(configure: Parameters<typeof fakeServer>[0], options: Parameters<typeof fakeServer>[1] = {}) {
  const ends: TransferEvent[] = [];
  const starts: TransferStart[] = [];
  const s = await fakeServer(configure, { onTransfer: (e) => ends.push(e), onTransferStart: (e) => starts.push(e), ...options });
  return { ...s, ends, starts };
}

test("an upload's event comes with its last ACK, with the transfer's own duration, not after the dally", async () => {
  const { net, app, ends, starts } = await recorded((app) => app.write("*", async ({ body }) => void (await new Response(body).arrayBuffer())));
  const client = await fakePeer(net);
  client.send(encodeRequest(2, "up", "octet", { blksize: "512" }), 69);
  await net.deliver();
  const [oack] = packets(client.take());
  assert.is(oack.op, 6);
  assert.is(starts.length, 1);
  assert.equal([starts[0].kind, starts[0].filename, starts[0].mode, starts[0].asked], ["write", "up", "octet", { blksize: "512" }]);
  await net.advance(40);
  client.send(encodeData(1, bytesOf(512)), oack.from);
  await net.deliver();
  await net.advance(50);
  client.send(encodeData(2, bytesOf(7)), oack.from);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, (p as { block: number }).block]), [[4, 1], [4, 2]]);
  assert.is(ends.length, 1, "no event at the last ACK");
  const e = ends[0];
  assert.equal([e.kind, e.outcome, e.bytes, e.blocks, e.durationMs, e.refused], ["write", "ok", 519, 2, 90, undefined]);
  assert.is(app.engine!.load, 1, "the upload still dallies");
  await net.advance(DALLY_TIMEOUTS * 1000 + 100);
  assert.is(app.engine!.load, 0);
  assert.is(ends.length, 1, "a second event at the end of the dally");
});

test("shutting down during an upload's dally: the upload stays ok, one event, and close() does not wait for the dally", async () => {
  const { net, app, ends } = await recorded((app) => app.write("*", async ({ body }) => void (await new Response(body).arrayBuffer())));
  const client = await fakePeer(net);
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  const [ack0] = packets(client.take());
  client.send(encodeData(1, bytesOf(10)), ack0.from);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op), [4]);
  assert.is(ends.length, 1);
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  await net.settle();
  assert.ok(closed, "close() waited for the dally");
  await closing;
  assert.equal(ends.map((e) => e.outcome), ["ok"]);
  assert.equal(packets(client.take()), [], "the client got an ERROR after its upload was acknowledged");
});

test("a read's start event carries the handler's latency; the end event blocks, mode and the options asked and granted", async () => {
  const { net, ends, starts } = await recorded((app) =>
    app.read("slow", () => new Promise((resolve) => net.after(250, () => resolve(bytesOf(1000))))));
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "slow", "octet", { blksize: "600", tsize: "0" }), 69);
  await net.deliver();
  assert.equal(starts, []);
  await net.advance(250);
  await net.deliver();
  assert.is(starts.length, 1);
  assert.is(starts[0].handlerMs, 250);
  assert.equal(starts[0].granted, { blksize: "600", tsize: "1000" });
  const [oack] = packets(client.take());
  client.send(encodeAck(0), oack.from);
  await net.deliver();
  client.send(encodeAck(1), oack.from);
  await net.deliver();
  client.send(encodeAck(2), oack.from);
  await net.deliver();
  assert.is(ends.length, 1);
  const e = ends[0];
  assert.equal([e.outcome, e.bytes, e.blocks, e.mode, e.asked, e.options, e.handlerMs], ["ok", 1000, 2, "octet", { blksize: "600", tsize: "0" }, {
    blksize: "600",
    tsize: "1000",
  }, 250]);
});

test("refusals carry a reason from a small fixed set", async () => {
  const { net, ends } = await recorded((app) => {
    app.read("missing", () => null as never);
    app.read("secret", () => {
      throw new TftpError(2, "no");
    });
    app.read("broken", () => {
      throw new Error("bug");
    });
    app.read("stuck", () => new Promise(() => {}));
    app.read("custom", () => {
      throw new TftpError(0, "come back later");
    });
  }, { handlerTimeout: 1 });
  // One client port each: a request from the port of one still in its handler is taken for a repeat.
  let host = 2;
  const ask = async (op: 1 | 2, name: string, mode = "octet") => (await fakePeer(net, `127.0.0.${host++}`)).send(encodeRequest(op, name, mode, {}), 69);
  for (const name of ["missing", "secret", "broken", "stuck", "custom", "nowhere"]) await ask(1, name);
  await ask(2, "up"); // no write route
  await ask(1, "missing", "mail");
  await net.deliver();
  await net.advance(1000);
  await net.deliver();
  const by = Object.fromEntries(ends.map((e) => [`${e.kind} ${e.filename} ${e.mode}`, [e.refused, e.reason, e.error?.code]]));
  assert.equal(by, {
    "read missing octet": [true, "not_found", 1],
    "read secret octet": [true, "access", 2],
    "read broken octet": [true, "handler_error", 0],
    "read stuck octet": [true, "handler_timeout", 0],
    "read custom octet": [true, "other", 0],
    "read nowhere octet": [true, "not_found", 1],
    "write up octet": [true, "access", 2],
    "read missing mail": [true, "bad_request", 4],
  });
});

test("a client that stops answering: the transfer fails with reason timeout", async () => {
  const { net, ends } = await recorded((app) => app.read("f", () => bytesOf(2000)));
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const [d1] = packets(client.take());
  client.send(encodeAck(1), d1.from);
  await net.deliver();
  await net.advance(10_000);
  assert.equal(ends.map((e) => [e.outcome, e.reason, e.refused, e.blocks]), [["failed", "timeout", undefined, 1]]);
});

test("metrics: counts by kind and outcome, refusals by reason, bytes, blocks, live sessions, histograms", async () => {
  const { net, app } = await recorded((app) => {
    app.read("f", () => bytesOf(1000));
    app.write("*", async ({ body }) => void (await new Response(body).arrayBuffer()));
  }, { metrics: true });
  const m = app.metrics!;
  const value = (series: string) => {
    const line = m.render().split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  assert.is(value('emmer_transfers_started_total{kind="read"}'), 0, "series exist before the first event");
  const client = await fakePeer(net);
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  assert.is(value("emmer_sessions"), 1);
  const [d1] = packets(client.take());
  client.send(encodeAck(1), d1.from);
  await net.deliver();
  client.send(encodeAck(2), d1.from);
  await net.deliver();
  (await fakePeer(net, "127.0.0.4")).send(encodeRequest(1, "nope", "octet", {}), 69);
  const other = await fakePeer(net, "127.0.0.3");
  other.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  const [ack0] = packets(other.take()).filter((p) => p.op === 4);
  other.send(encodeData(1, bytesOf(5)), ack0.from);
  await net.deliver();
  assert.is(value('emmer_transfers_started_total{kind="read"}'), 1);
  assert.is(value('emmer_transfers_started_total{kind="write"}'), 1);
  assert.is(value('emmer_transfers_ended_total{kind="read",outcome="ok"}'), 1);
  assert.is(value('emmer_transfers_ended_total{kind="write",outcome="ok"}'), 1);
  assert.is(value('emmer_requests_refused_total{kind="read",reason="not_found"}'), 1);
  assert.is(value('emmer_transfer_bytes_total{kind="read"}'), 1000);
  assert.is(value('emmer_transfer_bytes_total{kind="write"}'), 5);
  assert.is(value('emmer_transfer_blocks_total{kind="read"}'), 2);
  assert.is(value('emmer_handler_seconds_count{kind="read"}'), 1, "no route matched \"nope\": no handler ran");
  assert.is(value('emmer_transfer_duration_seconds_count{kind="read",outcome="ok"}'), 1);
  assert.is(value("emmer_sessions"), 1, "the upload dallies");
  assert.is(value("emmer_sessions_max"), 1000);
  assert.ok(value("emmer_wasm_memory_bytes")! > 0);
  for (const line of m.render().split("\n")) assert.not.match(line, /127\.0\.0\.|"up"|"f"/, `an address or a file name as a label: ${line}`);
});

test("metrics: requests dropped unanswered (busy, rate) count as refusals, each once, though logged once a second", async () => {
  const { net, app, ends } = await recorded((app) => app.read("f", () => bytesOf(2000)), { metrics: true, maxSessions: 1 });
  let host = 2;
  const ask = async () => (await fakePeer(net, `127.0.0.${host++}`)).send(encodeRequest(1, "f", "octet", {}), 69);
  for (let i = 0; i < 4; i++) await ask(); // one transfer, three dropped
  await net.deliver();
  await net.advance(1000);
  await ask();
  await net.deliver();
  assert.equal(ends.filter((e) => e.refused).map((e) => [e.reason, e.dropped]), [["busy", 1], ["busy", 2]]);
  assert.match(app.metrics!.render(), /^emmer_requests_refused_total\{kind="read",reason="busy"\} 3$/m);
  await net.advance(1000); // the fifth one's report
  assert.equal(ends.filter((e) => e.refused).map((e) => e.dropped), [1, 2, 1]);
  assert.match(app.metrics!.render(), /^emmer_requests_refused_total\{kind="read",reason="busy"\} 4$/m);
  assert.match(app.metrics!.render(), /^emmer_transfers_started_total\{kind="read"\} 1$/m);
});

test("--port-range: transfers take ports from the range; with all taken, a request is refused as busy", async () => {
  const { net, ends } = await recorded((app) => app.read("f", () => bytesOf(2000)), { portRange: [50000, 50001] });
  const a = await fakePeer(net, "127.0.0.2");
  const b = await fakePeer(net, "127.0.0.3");
  const c = await fakePeer(net, "127.0.0.4");
  for (const peer of [a, b, c]) {
    peer.send(encodeRequest(1, "f", "octet", {}), 69);
    await net.deliver();
  }
  const from = [a, b, c].map((p) => packets(p.take())[0]);
  assert.equal(from.slice(0, 2).map((p) => [p.op, p.from]).sort(), [[3, 50000], [3, 50001]]);
  assert.equal([from[2].op, (from[2] as { message: string }).message, from[2].from], [5, "server busy: no port for the transfer", 69]);
  assert.equal(ends.map((e) => [e.refused, e.reason]), [[true, "busy"]]);
});

test.run();
