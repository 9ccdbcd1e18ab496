// The engine on a fake clock and an in-memory network: transfer IDs, timeouts,
// read-ahead bounds and shutdown, with time as an input.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeData, encodeError, encodeRequest } from "../core/codec.ts";
import type { DataPacket, Packet } from "../core/packet.ts";
import type { BlockSource } from "../core/body.ts";
import { ringSlots } from "../core/session.ts";
import { arenaInUse } from "../core/arena.ts";
import type { TransferEvent } from "../core/events.ts";
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

/** What reaches `client` until `until` on the fake clock, in 100 ms steps: [time, op, block or code]. */
async function heard(net: Awaited<ReturnType<typeof setup>>["net"], client: Awaited<ReturnType<typeof fakePeer>>, until: number) {
  const got: [number, number, number][] = [];
  while (net.time < until) {
    await net.advance(100);
    await net.deliver();
    for (const p of packets(client.take())) got.push([net.time, p.op, (p as { block?: number }).block ?? (p as { code?: number }).code ?? 0]);
  }
  return got;
}

test("an unanswered first packet is resent with backoff (at 1 s and 3 s), then ERROR 0 at 7 s, and the session is gone", async () => {
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(2000)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  client.take();
  assert.equal(await heard(net, client, 8000), [[1000, 3, 1], [3000, 3, 1], [7000, 5, 0]]);
  assert.is(app.engine!.load, 0);
});

test("a client whose first answer comes 6.5 s late is still served (the OACK was resent at 1 s and 3 s)", async () => {
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(2000)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", { blksize: "1024" }), 69);
  await net.deliver();
  const [oack] = packets(client.take());
  assert.equal(await heard(net, client, 6500), [[1000, 6, 0], [3000, 6, 0]]);
  client.send(encodeAck(0), oack.from);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, (p as DataPacket).block]), [[3, 1]]);
  assert.is(app.engine!.load, 1);
});

test("once the client has answered, the first timeout is the timeout again; from the second in a row the wait doubles", async () => {
  const { net } = await setup((app) => app.read("f", () => bytesOf(5000)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "f", "octet", {}), 69);
  await net.deliver();
  const port = client.take()[0].port;
  client.send(encodeAck(1), port);
  await net.deliver();
  client.take();
  // retries 2: resends at 1 s and 2 s, then a wait of 2 s (a peer that answers only on its own timer,
  // which each resend restarts, gets a silence), and the end.
  assert.equal(await heard(net, client, 5000), [[1000, 3, 2], [2000, 3, 2], [4000, 5, 0]]);
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

/** A server of one 2000-byte file, and a boot ROM that asked for its size and got the first OACK. */
async function romAfterFirstOack() {
  const events: TransferEvent[] = [];
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(2000)), { onTransfer: (e) => events.push(e) });
  const rom = await fakePeer(net, "127.0.0.2");
  const rrq = encodeRequest(1, "f", "octet", { tsize: "0", blksize: "1024" });
  rom.send(rrq, 69);
  await net.deliver();
  const [oack1] = packets(rom.take());
  return { net, app, events, rom, rrq, oack1 };
}

// A PXE ROM asks for tsize, refuses the OACK with ERROR 8 on the transfer port and asks again from the
// same port ~2 ms later. The ERROR and the new request reach different sockets: either may come first.
test("a re-request from the same port before the ERROR that ended the first: a new transfer answers at once, the first ends on the ERROR", async () => {
  const { net, app, events, rom, rrq, oack1 } = await romAfterFirstOack();
  rom.send(rrq, 69); // the request overtakes the ERROR
  await net.deliver();
  const [oack2] = packets(rom.take());
  assert.equal([oack2.op, (oack2 as { options: Record<string, string> }).options.tsize], [6, "2000"], "the new request was not answered");
  assert.is.not(oack2.from, oack1.from);
  rom.send(encodeError(8, "tsize only"), oack1.from);
  await net.deliver();
  assert.equal(events.map((e) => [e.outcome, e.error?.code, e.error?.byPeer]), [["failed", 8, true]]);
  rom.send(encodeAck(0), oack2.from);
  await net.deliver();
  assert.equal(packets(rom.take()).map((p) => [p.op, (p as DataPacket).block, p.from]), [[3, 1, oack2.from]]);
  assert.is(app.engine!.load, 1);
});

test("a re-request from the same port with no ERROR (or one sent to port 69) is answered at once; the answer the client confirms wins and the other ends without a word", async () => {
  const { net, app, events, rom, rrq, oack1 } = await romAfterFirstOack();
  rom.send(encodeError(8, "tsize only"), 69); // to the wrong port: dropped
  rom.send(rrq, 69);
  await net.deliver();
  const [oack2] = packets(rom.take());
  assert.is(oack2.op, 6, "the re-request waited");
  assert.is(app.engine!.load, 2);
  rom.send(encodeAck(0), oack2.from);
  await net.deliver();
  assert.equal(packets(rom.take()).map((p) => [p.op, p.from]), [[3, oack2.from]]);
  assert.is(app.engine!.load, 1, "the unconfirmed sibling still runs");
  await net.advance(2500); // past the sibling's first resend (1 s), short of the live one's end (3 s)
  await net.deliver();
  assert.ok(packets(rom.take()).every((p) => p.from === oack2.from), "the sibling sent something after the client chose");
  assert.equal(events, [], "a silently ended sibling was reported");
  void oack1;
});

test("re-requests from one port start at most 4 unconfirmed transfers; a confirmed transfer's repeat is ignored", async () => {
  let calls = 0;
  const { net, app } = await setup((app) => app.read("f", () => (calls++, bytesOf(5000))));
  const client = await fakePeer(net, "127.0.0.2");
  const rrq = encodeRequest(1, "f", "octet", {});
  for (let i = 0; i < 6; i++) {
    client.send(rrq, 69);
    await net.deliver();
  }
  const first = packets(client.take());
  assert.is(calls, 4);
  assert.is(app.engine!.load, 4);
  assert.is(new Set(first.map((p) => p.from)).size, 4);
  client.send(encodeAck(1), first[2].from);
  await net.deliver();
  assert.is(app.engine!.load, 1, "the others did not end");
  assert.equal(packets(client.take()).map((p) => [p.op, (p as DataPacket).block, p.from]), [[3, 2, first[2].from]]);
  client.send(rrq, 69);
  await net.deliver();
  assert.equal(client.take(), [], "a repeat of a confirmed transfer was answered");
  assert.is(calls, 4);
});

test("single port: the same request again from an unconfirmed transfer's port resends its first packet at once, as a retransmission", async () => {
  const events: { retransmits: number; outcome: string }[] = [];
  const { net, app } = await setup((app) => app.read("f", () => bytesOf(700)), { singlePort: true, onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net, "127.0.0.2");
  const rrq = encodeRequest(1, "f", "octet", { blksize: "512" });
  client.send(rrq, 69);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op), [6]);
  client.send(rrq, 69);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, p.from]), [[6, 69]], "the repeat was not answered at once");
  client.send(encodeAck(0), 69);
  await net.deliver();
  client.send(encodeAck(1), 69);
  await net.deliver();
  client.send(encodeAck(2), 69);
  await net.deliver();
  assert.equal(events.map((e) => [e.outcome, e.retransmits]), [["ok", 1]]);
  assert.is(app.engine!.load, 0);
});

test("single port: another request from an unconfirmed transfer's port replaces it (the old one ends without a word)", async () => {
  const events: { filename: string; outcome: string }[] = [];
  const { net, app } = await setup((app) => app.read("*", ({ filename }) => filename.repeat(10)), { singlePort: true, onTransfer: (e) => events.push(e) });
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "a", "octet", {}), 69);
  await net.deliver();
  client.take();
  client.send(encodeRequest(1, "b", "octet", { blksize: "8" }), 69);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => [p.op, p.from]), [[6, 69]], "the new request was not answered");
  assert.is(app.engine!.load, 1);
  client.send(encodeAck(0), 69);
  await net.deliver();
  const [d1] = packets(client.take()) as DataPacket[];
  assert.equal([d1.block, new TextDecoder().decode(d1.payload)], [1, "bbbbbbbb"]);
  await net.advance(10_000);
  await net.deliver();
  assert.ok(packets(client.take()).every((p) => p.op !== 3 || (p as DataPacket).payload[0] === 0x62), "the replaced transfer sent");
  assert.equal(events.map((e) => e.filename), ["b"], "the replaced transfer was reported");
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
  // Bytes read but not yet acknowledged, round by round: the read-ahead.
  const ahead: number[] = [];
  for (let round = 0; round < 100; round++) {
    await net.deliver();
    const got = packets(client.take());
    assert.is(got.length, 8, "a full window each round");
    acked += 8;
    client.send(encodeAck(acked & 0xffff), port);
    ahead.push(pulled - acked * blksize);
  }
  // 100 rounds acknowledge 800 KiB: an unbounded read-ahead would have pulled ever more. Bounded: the
  // first rounds' read-ahead is never exceeded later (a chunk's slack aside), and it is a ring's
  // worth (128 KiB of read-ahead), not a multiple.
  const early = Math.max(...ahead.slice(0, 10));
  const late = Math.max(...ahead.slice(10));
  assert.ok(late <= early + 4096, `the read-ahead grew with the stream's length: ${early} bytes at first, ${late} later`);
  assert.ok(early <= 256 * 1024, `${early} bytes read ahead of the client's ACKs`);
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
  // The first window went out of the small ring; lose it: its retransmission comes from the large one
  // (half of it at once, since a whole window was lost, and the rest after a pause).
  client.take();
  await net.advance(1000);
  await net.deliver();
  await net.advance(10);
  await net.deliver();
  const again = packets(client.take()) as DataPacket[];
  assert.equal(again.map((d) => d.block), [1, 2, 3, 4]);
  again.forEach((d, i) => assert.equal(d.payload, body.subarray(i * 1000, (i + 1) * 1000), `block ${d.block} changed when the ring moved`));
  client.send(encodeAck(4), port);
  await net.deliver();
  const got: Uint8Array[] = [body.subarray(0, 4000)];
  for (let round = 0; round < 400 && app.engine!.load > 0; round++) {
    await net.advance(5); // the window comes in paced bursts since the loss
    await net.deliver();
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

// Deno's read-transfer sockets receive at most 128 bytes (core/endpoint.ts): a longer ERROR arrives cut, without its NUL.
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

test("an empty file: tsize 0 is left out of the OACK (curl refuses it); with nothing else asked, DATA 1 comes first", async () => {
  const { net } = await setup((app) => app.read("empty", () => new Uint8Array(0)));
  const client = await fakePeer(net, "127.0.0.2");
  client.send(encodeRequest(1, "empty", "octet", { tsize: "0" }), 69);
  await net.deliver();
  const [d1] = packets(client.take()) as DataPacket[];
  assert.equal([d1.op, d1.block, d1.payload.length], [3, 1, 0]);
  const curl = await fakePeer(net, "127.0.0.3");
  curl.send(encodeRequest(1, "empty", "octet", { tsize: "0", blksize: "512", timeout: "6" }), 69);
  await net.deliver();
  const [oack] = packets(curl.take());
  assert.equal(oack, { op: 6, options: { blksize: "512", timeout: "6" }, from: oack.from });
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
