// Memory lifetimes that a review found wrong once: rings freed while their
// datagrams still wait in the transport, rings held forever by a stuck stream,
// repeated requests in single-port mode, the last ERROR on close.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Emmer } from "../drivers/app.ts";
import { arenaInUse } from "../core/arena.ts";
import { decode, encodeAck, encodeError, encodeRequest } from "../core/codec.ts";
import type { Packet } from "../core/packet.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";

const setup = (configure: (app: Emmer) => void, options = {}) => fakeServer(configure, { drainTimeout: 1000, ...options });

const decoded = (inbox: { data: Uint8Array }[]) => inbox.map((m) => decode(m.data) as Packet & { payload?: Uint8Array; message?: string });

test("a ring stays reserved while its datagrams wait in the transport (lazy sends, as on Deno)", async () => {
  const { net } = await setup((app) => app.read("*", ({ filename }) => new Uint8Array(5000).fill(filename.charCodeAt(0))));
  net.lazySends = true;
  const a = await fakePeer(net, "127.0.0.2");
  const b = await fakePeer(net, "127.0.0.3");
  a.send(encodeRequest(1, "A", "octet", {}), 69);
  await net.deliver((d) => d.to.port === 69);
  const pending = net.queue.find((d) => d.to.port === a.port)!; // DATA 1 to A, not yet read by the "kernel"
  assert.ok(pending, "no DATA queued for A");
  // A gives up before its DATA went out; B asks for another file at once.
  a.send(encodeError(0, "cancelled"), pending.from.port);
  await net.deliver((d) => d.from.port === a.port);
  b.send(encodeRequest(1, "B", "octet", {}), 69);
  await net.deliver((d) => d.to.port === 69);
  await net.deliver(); // now the kernel reads every queued datagram
  const toA = decoded(a.take()).find((p) => p.op === 3)!;
  assert.ok(toA.payload!.every((x) => x === 65), "A's datagram carries another transfer's bytes");
  const toB = decoded(b.take()).find((p) => p.op === 3)!;
  assert.ok(toB.payload!.every((x) => x === 66));
});

test("a stream stuck forever does not hold its ring once the transfer is over", async () => {
  const before = arenaInUse();
  const { net, app } = await setup((app) =>
    app.read("*", async function* () {
      yield new Uint8Array(600);
      await new Promise(() => {}); // an upstream that never answers again
    }), { retries: 1 });
  for (let i = 0; i < 5; i++) {
    const c = await fakePeer(net, "127.0.0.2");
    c.send(encodeRequest(1, `f${i}`, "octet", { blksize: "65464", windowsize: "16" }), 69);
  }
  await net.deliver();
  assert.ok(arenaInUse() > before, "no ring was taken");
  for (let i = 0; i < 10; i++) {
    await net.advance(1000);
    await net.deliver();
  }
  assert.is(app.engine!.load, 0);
  assert.is(arenaInUse(), before, "rings still held after the transfers ended");
});

test("single-port mode: a repeated request does not end the live transfer (its first packet is resent at once)", async () => {
  const { net } = await setup((app) => app.read("*", () => new Uint8Array(2000)), { singlePort: true });
  const c = await fakePeer(net, "127.0.0.2");
  const rrq = encodeRequest(1, "f", "octet", {});
  c.send(rrq, 69);
  await net.deliver();
  assert.equal(decoded(c.take()).map((p) => p.op), [3]);
  c.send(rrq, 69); // our DATA 1 "was lost": the client asks again
  await net.deliver();
  assert.equal(decoded(c.take()).map((p) => [p.op, (p as { block?: number }).block]), [[3, 1]], "DATA 1 was not resent");
  c.send(encodeAck(1), 69);
  await net.deliver();
  assert.equal(decoded(c.take()).map((p) => [p.op, (p as { block?: number }).block]), [[3, 2]]);
});

test("single-port mode: close() gets 'server shutting down' out before the socket closes", async () => {
  const { net, app } = await setup((app) => app.read("*", () => new Uint8Array(5000)), { singlePort: true, drainTimeout: 100 });
  net.lazySends = true;
  const c = await fakePeer(net, "127.0.0.2");
  c.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  c.send(encodeAck(1), 69);
  await net.deliver();
  c.take();
  const closing = app.close();
  await net.advance(100);
  await net.deliver();
  await closing;
  const last = decoded(c.take()).pop();
  assert.equal([last?.op, last?.message], [5, "server shutting down"]);
});

test.run();
