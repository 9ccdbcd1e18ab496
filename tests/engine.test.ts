// The engine on a fake clock and an in-memory network: transfer IDs, timeouts,
// read-ahead bounds and shutdown, with time as an input.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeData, encodeRequest } from "../core/codec.ts";
import type { DataPacket, Packet } from "../core/packet.ts";
import type { BlockSource } from "../core/body.ts";
import { ringSlots } from "../core/session.ts";
import { arenaInUse } from "../core/arena.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";
import { concat } from "./support/random_packets.ts";

const setup = fakeServer;

const packets = (inbox: { data: Uint8Array; port: number }[]) => inbox.map((m) => ({ ...(decode(m.data) as Packet), from: m.port }));

test("a stranger's packet on a transfer port gets ERROR 5; the transfer goes on", async () => {
  const { net } = await setup((app) => app.read("f", () => bytesOf(2000)));
  const client = await fakePeer(net, "127.0.0.2");
  const stranger = await fakePeer(net, "127.0.0.3");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const [d1] = packets(client.take());
  assert.equal([d1.op, (d1 as { block: number }).block], [3, 1]);
  assert.is.not(d1.from, 69, "DATA must come from a new port");
  stranger.send(encodeAck(1), d1.from);
  await net.deliver();
  const [e] = packets(stranger.take());
  assert.equal([e.op, (e as { code: number }).code], [5, 5]);
  assert.equal(client.take(), [], "the stranger's ACK moved the transfer");
  client.send(encodeAck(1), d1.from);
  await net.deliver();
  const [d2] = packets(client.take());
  assert.equal([d2.op, (d2 as { block: number }).block], [3, 2]);
});

test("timeouts: the same DATA again after each timeout, then ERROR 0, and the session is gone", async () => {
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(2000)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port;
  await net.advance(999);
  await net.deliver();
  assert.equal(client.take(), [], "retransmitted before the timeout");
  await net.advance(101);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, (p as { block: number }).block]), [[3, 1]]);
  await net.advance(1100);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op), [3]);
  await net.advance(1100);
  await net.deliver();
  const end = packets(client.take());
  assert.equal(end.map((p) => [p.op, (p as { code: number }).code]), [[5, 0]]);
  assert.is(end[0].from, port);
  assert.is(app.engine!.load, 0);
});

test("a retransmitted request does not start a second transfer", async () => {
  let calls = 0;
  const { net, app } = await setup((app) => app.read("f", () => (calls++, bytesOf(100))));
  const client = await fakePeer(net, "127.0.0.2");
  const rrq = encodeRequest(1, "f", "octet", {});
  client.send(rrq, 69);
  client.send(rrq, 69);
  await net.deliver();
  assert.is(calls, 1);
  assert.is(app.engine!.load, 1);
  assert.is(client.take().length, 1);
});

/** An upload of one 10-byte block from 127.0.0.2, to its last ACK; the server is left dallying. */
async function finishedUpload(singlePort: boolean) {
  const events: { kind: string; outcome: string }[] = [];
  const stored: number[] = [];
  const { net, app } = await setup((app) => {
    app.write("*", async ({ body }) => void stored.push((await new Response(body).arrayBuffer()).byteLength));
    app.read("f", () => bytesOf(100));
  }, { singlePort, onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  const [ack0] = packets(client.take());
  assert.equal([ack0.op, (ack0 as { block: number }).block], [4, 0]);
  client.send(encodeData(1, bytesOf(10)), ack0.from);
  await net.deliver();
  const [ack1] = packets(client.take());
  assert.equal([ack1.op, (ack1 as { block: number }).block], [4, 1]);
  assert.equal(stored, [10]);
  assert.is(app.engine!.load, 1, "the upload dallies for its last DATA again");
  return { net, app, client, events, uploadPort: ack0.from };
}

test("a new request from the port of a finished upload is answered at once, not taken for a repeat during the dally", async () => {
  const { net, app, client, events, uploadPort } = await finishedUpload(false);
  await net.advance(100);
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const [d1] = packets(client.take());
  assert.equal([d1.op, (d1 as { block: number }).block], [3, 1]);
  assert.is.not(d1.from, uploadPort);
  assert.equal(events.map((e) => [e.kind, e.outcome]), [["write", "ok"]], "the upload ended, as a success");
  assert.is(app.engine!.load, 1);
});

test("the upload's own WRQ again during the dally is still a repeat: a late copy must not start the upload over", async () => {
  const { net, app, client, events } = await finishedUpload(false);
  await net.advance(100);
  client.send(encodeRequest(2, "up", "octet", {}), 69);
  await net.deliver();
  assert.equal(client.take(), [], "answered a repeat");
  assert.equal(events.map((e) => e.outcome), ["ok"], "reported once, at the last ACK");
  assert.is(app.engine!.load, 1, "the dally was ended");
});

test("single port: a request from the port of a finished upload waits for the dally's end (a late copy of the last DATA must not reach a new transfer)", async () => {
  const { net, app, client, events } = await finishedUpload(true);
  const rrq = encodeRequest(1, "f", "octet", {});
  await net.advance(100);
  client.send(rrq, 69);
  await net.deliver();
  assert.equal(client.take(), [], "answered during the dally");
  // The last DATA again, late: the upload's own dally answers it, as ever.
  client.send(encodeData(1, bytesOf(10)), 69);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, (p as { block: number }).block]), [[4, 1]]);
  await net.advance(3100); // 3 timeouts after that last ACK
  await net.deliver();
  assert.equal(events.map((e) => [e.kind, e.outcome]), [["write", "ok"]], "the upload ended, as a success");
  client.send(rrq, 69); // the client's retransmission
  await net.deliver();
  const [d1] = packets(client.take());
  assert.equal([d1.op, (d1 as { block: number }).block], [3, 1]);
  assert.is(app.engine!.load, 1);
});

test("a stream is read ahead by at most the ring: memory stays flat whatever its length", async () => {
  let pulled = 0;
  const blksize = 1024;
  const { net } = await setup((app) =>
    app.read("endless", () =>
      new ReadableStream<Uint8Array>({
        pull(c) {
          pulled += 4096;
          c.enqueue(new Uint8Array(4096));
        },
      }, { highWaterMark: 0 })
    )
  );
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "endless", "octet", { blksize: String(blksize), windowsize: "8" }), 69);
  await net.deliver();
  const port = client.take()[0].port; // the OACK
  let acked = 0;
  client.send(encodeAck(0), port);
  for (let round = 0; round < 100; round++) {
    await net.deliver();
    const got = packets(client.take());
    assert.is(got.length, 8, "a full window each round");
    acked += 8;
    client.send(encodeAck(acked & 0xffff), port);
    // At most a ring beyond what was acknowledged, plus one chunk.
    const ring = ringSlots(blksize, 8);
    assert.ok(ring < 200, "the ring itself is bounded");
    assert.ok(pulled <= (acked + ring) * blksize + 4096, `pulled ${pulled} bytes with ${acked} blocks acknowledged`);
  }
});

test("a client that never answers holds one window of ring; its first ACK brings the full ring, bytes intact", async () => {
  const body = bytesOf(300_000, 3);
  const { net, app } = await setup((app) => app.read("f", () => body));
  const before = arenaInUse();
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", { blksize: "1000", windowsize: "4" }), 69);
  await net.deliver();
  const port = client.take()[0].port; // the OACK
  assert.ok(arenaInUse() - before <= 4 * 1004 * 2, `a stalled transfer holds ${arenaInUse() - before} bytes of ring`);
  client.send(encodeAck(0), port);
  await net.deliver();
  assert.ok(arenaInUse() - before >= ringSlots(1000, 4) * 1004, `the ring did not grow: ${arenaInUse() - before} bytes`);
  // The first window went out of the small ring; lose it: its retransmission comes from the large one.
  client.take();
  await net.advance(1000);
  await net.deliver();
  const again = packets(client.take()) as DataPacket[];
  assert.equal(again.map((d) => d.block), [1, 2, 3, 4]);
  again.forEach((d, i) => assert.equal(d.payload, body.subarray(i * 1000, (i + 1) * 1000), `block ${d.block} changed when the ring moved`));
  client.send(encodeAck(4), port);
  await net.deliver();
  const got: Uint8Array[] = [body.subarray(0, 4000)];
  for (let round = 0; round < 200 && app.engine!.load > 0; round++) {
    const data = packets(client.take()).filter((p) => p.op === 3) as DataPacket[];
    if (data.length === 0) break;
    for (const d of data) got.push(d.payload.slice());
    client.send(encodeAck(data[data.length - 1].block), port);
    await net.deliver();
  }
  const joined = new Uint8Array(got.reduce((n, d) => n + d.length, 0));
  got.reduce((at, d) => (joined.set(d, at), at + d.length), 0);
  assert.equal(joined, body);
  assert.is(app.engine!.load, 0);
  assert.is(arenaInUse(), before, "the ring went back to the arena");
});

test("after an OACK nothing is read, and one slot is held, until the client's ACK 0 (blksize 65464, windowsize 64)", async () => {
  const body = bytesOf(300_000, 5);
  let reads = 0;
  const counted = (): BlockSource => {
    let at = 0;
    return {
      size: body.length,
      fill(target) {
        reads++;
        let n = 0;
        for (let i = 0; i < target.count; i++) {
          const view = target.view(i);
          const chunk = body.subarray(at, at + view.length);
          view.set(chunk);
          at += chunk.length;
          n += chunk.length;
          if (chunk.length < view.length) break;
        }
        return n;
      },
      close() {},
    };
  };
  const { net, app } = await setup((app) => app.read("f", counted));
  const before = arenaInUse();
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", { blksize: "65464", windowsize: "64" }), 69);
  await net.deliver();
  const [oack] = packets(client.take());
  assert.is(oack.op, 6);
  await net.advance(1000); // the OACK again: still nothing read
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op), [6]);
  assert.is(reads, 0, "the file was read for a client that has not answered");
  assert.ok(arenaInUse() - before <= 65536, `a client that never answered holds ${arenaInUse() - before} bytes of ring (a window is 4 MiB)`);
  client.send(encodeAck(0), oack.from);
  await net.deliver();
  const window = packets(client.take()) as DataPacket[];
  assert.equal(window.map((d) => d.block), [1, 2, 3, 4, 5]);
  assert.equal(concat(window.map((d) => d.payload)), body);
  client.send(encodeAck(5), oack.from);
  await net.deliver();
  assert.is(app.engine!.load, 0);
  assert.is(arenaInUse(), before, "the ring went back to the arena");
});

test("no port for a transfer (e.g. out of file descriptors): ERROR 0 server busy, the operator is told, the server goes on", async () => {
  const errors: string[] = [];
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(100)), { onError: (e, context) => errors.push(`${context}: ${e}`) });
  const client = await fakePeer(net, "127.0.0.2");
  const bind = net.bind.bind(net);
  net.bind = (hostname, port, onMessage) => (port === 0 ? Promise.reject(new Error("bind EMFILE")) : bind(hostname, port, onMessage));
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const [e] = packets(client.take());
  assert.equal([e.op, (e as { message: string }).message], [5, "server busy: no port for the transfer"]);
  assert.ok(errors.some((line) => /binding a port for f from 127\.0\.0\.2:\d+: Error: bind EMFILE/.test(line)), errors.join("\n"));
  net.bind = bind;
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  assert.is(packets(client.take())[0].op, 3, "the next request is served");
  assert.is(app.engine!.load, 1);
});

test("a file of known size gets a ring of no more slots than it has blocks", async () => {
  const { net } = await setup((app) => app.read("small", () => bytesOf(1500)));
  const before = arenaInUse();
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "small", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port;
  client.send(encodeAck(1), port); // confirmed: the ring may grow, but only to the file's 3 blocks
  await net.deliver();
  assert.is(packets(client.take()).map((p) => (p as DataPacket).block).join(), "2");
  assert.ok(arenaInUse() - before <= 2048, `a 1,500-byte file holds ${arenaInUse() - before} bytes of ring`);
});

// Deno's read-transfer sockets receive at most 128 bytes (core/engine.ts): a longer ERROR arrives cut, without its NUL.
test("an ERROR from the peer cut short (no closing NUL) still ends the transfer as the peer's failure", async () => {
  const events: { outcome: string; error?: { code: number; byPeer: boolean } }[] = [];
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(5000)), { onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port;
  client.send(new Uint8Array([0, 5, 0, 3, 0x64, 0x69, 0x73, 0x6b]), port); // ERROR 3 "disk", cut
  await net.deliver();
  assert.is(app.engine!.load, 0);
  assert.equal(events.map((e) => [e.outcome, e.error?.code, e.error?.byPeer]), [["failed", 3, true]]);
  assert.equal(client.take(), [], "an ERROR is never answered");
});

test("a request from port 0 is dropped: no handler call, no transfer, nothing sent", async () => {
  let calls = 0;
  const { net, app } = await setup((app) => app.read("f", () => (calls++, bytesOf(100))));
  net.queue.push({ data: encodeRequest(1, "f", "octet", {}), from: { address: "127.0.0.2", port: 0 }, to: { address: "127.0.0.1", port: 69 } });
  await net.deliver();
  await net.advance(5000);
  await net.deliver();
  assert.is(calls, 0);
  assert.is(app.engine!.load, 0);
  assert.equal(net.queue, [], "something was sent towards port 0");
});

test("a mail-mode request is refused with ERROR 4 and reported like any refusal (a failed transfer event)", async () => {
  const events: { outcome: string; filename: string; error?: { code: number; message: string } }[] = [];
  const { net } = await setup((app) => app.read("*", () => bytesOf(100)), { onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "root", "mail", {}), 69);
  await net.deliver();
  const [e] = packets(client.take());
  assert.equal([e.op, (e as { code: number }).code], [5, 4]);
  assert.equal(events.map((ev) => [ev.outcome, ev.filename, ev.error?.code, ev.error?.message]), [["failed", "root", 4, "mail mode is not supported"]]);
});

test("close(): live transfers get the drain time, then ERROR 0; the port is released", async () => {
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(5000)), { retries: 100 });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  client.send(encodeAck(1), client.take()[0].port); // a confirmed client, then silence
  await net.deliver();
  client.take();
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  await net.advance(2000);
  assert.not.ok(closed, "closed before the drain time");
  await net.advance(1000);
  await closing;
  await net.deliver();
  const last = packets(client.take()).pop()!;
  assert.equal([last.op, (last as { message: string }).message], [5, "server shutting down"]);
  await net.bind("127.0.0.1", 69, () => {}); // rebinding works: the listening socket is closed
});

test("close() with a transfer that finishes in time resolves as soon as it does", async () => {
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(10)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port;
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  client.send(encodeAck(1), port);
  await net.deliver();
  await closing;
  assert.ok(closed);
  assert.is(net.time, 0, "waited for the drain timeout");
});

test.run();
