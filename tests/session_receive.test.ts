// The receiving side of core/session.ts (a server's write), sans I/O, on a fake clock.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { encodeOack } from "../core/codec.ts";
import type { AckPacket, Packet } from "../core/packet.ts";
import { State } from "../core/session.ts";
import { bytesOf, data, error, receiver } from "./support/session_driver.ts";

const acks = (ps: Packet[]) => ps.map((p) => (p.op === 4 ? (p as AckPacket).block : `op${p.op}`));

/** Splits a body into DATA packets of blksize (a multiple ends with an empty one). */
function blocks(body: Uint8Array, blksize: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; ; i++) {
    const chunk = body.subarray(i * blksize, (i + 1) * blksize);
    out.push(data((i + 1) & 0xffff, chunk));
    if (chunk.length < blksize) return out;
  }
}

for (const windowsize of [1, 3]) {
  for (const size of [0, 1, 511, 512, 513, 1024, 3000]) {
    test(`upload of ${size} bytes, windowsize ${windowsize}: ACK per window, final ACK after the verdict`, () => {
      const body = bytesOf(size, size + 1);
      const r = receiver({ windowsize });
      assert.equal(acks(r.start(0)), [0]);
      const pkts = blocks(body, 512);
      const seen: (number | string)[] = [];
      pkts.forEach((p, i) => seen.push(...acks(r.feed(p, i))));
      const full = pkts.length - 1;
      const expected = Array.from({ length: Math.floor(full / windowsize) }, (_, i) => (i + 1) * windowsize);
      assert.equal(seen, expected, "ACKs before the last block");
      assert.ok(r.ended);
      assert.is(r.session.state, State.FINISHING);
      r.session.finish(true, 100);
      assert.equal(acks(r.take()), [pkts.length]);
      assert.equal(r.data(), body);
      assert.is(r.session.state, State.DALLYING);
    });
  }
}

test("dallying: three timeouts after the last ACK, extended by each retransmitted last block (bounded)", () => {
  const r = receiver({ retries: 2 });
  r.start(0);
  r.feed(data(1, bytesOf(10)), 1);
  r.session.finish(true, 2);
  assert.equal(acks(r.take()), [1]);
  assert.equal(r.timer(3001), [], "dallied less than three timeouts");
  assert.is(r.session.state, State.DALLYING);
  // the last ACK was lost: the block comes again, is re-ACKed, and the dally starts over
  assert.equal(acks(r.feed(data(1, bytesOf(10)), 3001)), [1]);
  assert.equal(r.timer(3002), []);
  assert.is(r.session.state, State.DALLYING);
  assert.equal(acks(r.feed(data(1, bytesOf(10)), 4000)), [1]);
  assert.equal(r.feed(data(1, bytesOf(10)), 4500), [], "re-ACKed beyond the retries");
  assert.equal(r.timer(6999), []);
  assert.is(r.session.state, State.DALLYING);
  r.timer(7000);
  assert.is(r.session.state, State.DONE);
});

test("a refused upload gets the verdict's ERROR, not the final ACK", () => {
  const r = receiver();
  r.start(0);
  r.feed(data(1, bytesOf(10)), 1);
  r.session.finish(false, 2, 3, "quota");
  assert.equal(r.take().map((p) => p.op), [5]);
  assert.is(r.session.state, State.FAILED);
  assert.equal(r.session.failure, { code: 3, message: "quota", byPeer: false });
});

test("a duplicate of the last ACKed block is re-ACKed (our ACK was lost); older ones are not", () => {
  const r = receiver();
  r.start(0);
  r.feed(data(1, bytesOf(512)), 1);
  r.feed(data(2, bytesOf(512)), 2);
  assert.equal(acks(r.feed(data(2, bytesOf(512)), 3)), [2]);
  assert.equal(r.feed(data(1, bytesOf(512)), 4), []);
  assert.is(r.received.length, 2, "a duplicate reached the sink");
});

test("a gap in a window: ACK the last in-order block once, drop the future blocks", () => {
  const r = receiver({ windowsize: 4 });
  r.start(0);
  r.feed(data(1, bytesOf(512, 1)), 1);
  assert.equal(acks(r.feed(data(3, bytesOf(512, 3)), 2)), [1]);
  assert.equal(r.feed(data(4, bytesOf(512, 4)), 3), [], "gap ACKed twice");
  // the sender resumes after 1: a full window of 4 more
  const seen = [2, 3, 4, 5].flatMap((b) => acks(r.feed(data(b, bytesOf(512, b)), 4)));
  assert.equal(seen, [5]);
  assert.is(r.received.length, 5);
});

test("a new gap in the window resent after a gap ACK is ACKed at once: the last in-order block", () => {
  const r = receiver({ windowsize: 8 });
  r.start(0);
  r.take();
  assert.equal(acks([1, 2].flatMap((b) => r.feed(data(b, bytesOf(512, b)), b))), []);
  assert.equal(acks(r.feed(data(4, bytesOf(512, 4)), 3)), [2], "3 lost");
  // The sender resends from 3; this time 4 is lost.
  assert.equal(r.feed(data(3, bytesOf(512, 3)), 4), []);
  assert.equal(acks(r.feed(data(5, bytesOf(512, 5)), 5)), [3], "the new gap waited for the timeout");
  assert.equal(r.feed(data(6, bytesOf(512, 6)), 6), [], "one gap ACK per step forward");
  assert.is(r.received.length, 3);
});

test("at a timeout the receiver ACKs the last block received in order, past the last ACK", () => {
  const r = receiver({ windowsize: 4 });
  r.start(0);
  r.take();
  r.feed(data(1, bytesOf(512, 1)), 100);
  r.feed(data(2, bytesOf(512, 2)), 200); // 3 and 4 lost: the window never completes
  assert.equal(acks(r.timer(1000)), [2], "ACK 0 again would have the sender resend blocks already held");
  // The sender goes on from 3: a full window of 4 more is ACKed as usual.
  const seen = [3, 4, 5, 6].flatMap((b) => acks(r.feed(data(b, bytesOf(512, b)), 1100)));
  assert.equal(seen, [6]);
});

test("a sender making progress is never given up on, however slow: every in-order block resets the retries", () => {
  const r = receiver({ windowsize: 8, retries: 1 });
  r.start(0);
  r.take();
  for (let b = 1; b <= 6; b++) {
    r.feed(data(b, bytesOf(512, b)), b * 1000 - 500); // one block per timeout, never a full window
    assert.equal(acks(r.timer(b * 1000)), [b], `timeout ${b}`);
  }
  assert.is(r.session.state, State.TRANSFERRING);
  // No progress since block 6: the timeout at 6000 was its one retry; the next gives up.
  assert.equal(r.timer(7000).map((p) => p.op), [5]);
  assert.is(r.session.state, State.FAILED);
});

test("timeouts resend the last ACK (or the OACK) until retries run out", () => {
  const oack = encodeOack({ blksize: "1024" });
  const r = receiver({ oack, blksize: 1024, retries: 2 });
  assert.equal(r.start(0), [{ op: 6, options: { blksize: "1024" } }]);
  assert.equal(r.timer(1000).map((p) => p.op), [6]);
  r.feed(data(1, bytesOf(1024)), 1500);
  assert.equal(acks(r.timer(2500)), [1]);
  assert.equal(acks(r.timer(3500)), [1]);
  assert.equal(r.timer(4500).map((p) => p.op), [5]);
  assert.is(r.session.state, State.FAILED);
});

test("an upload past the cap stops with ERROR 3", () => {
  const r = receiver({}, 1000);
  r.start(0);
  r.feed(data(1, bytesOf(512)), 1);
  const out = r.feed(data(2, bytesOf(512)), 2);
  assert.equal(out.map((p) => [p.op, (p as { code: number }).code]), [[5, 3]]);
  assert.is(r.session.state, State.FAILED);
});

test("a block larger than blksize is refused with ERROR 4", () => {
  const r = receiver();
  r.start(0);
  const out = r.feed(data(1, bytesOf(600)), 1);
  assert.equal(out.map((p) => [p.op, (p as { code: number }).code]), [[5, 4]]);
});

test("a full sink holds the ACK until resume()", () => {
  const r = receiver();
  r.start(0);
  r.accepting = false;
  assert.equal(r.feed(data(1, bytesOf(512)), 1), []);
  r.accepting = true;
  r.session.resume(2);
  assert.equal(acks(r.take()), [1]);
});

test("the ACK sent on resume() gets retries of its own, whatever the hold used up", () => {
  const r = receiver({ retries: 3 });
  r.start(0);
  r.take();
  r.accepting = false;
  assert.equal(r.feed(data(1, bytesOf(512)), 1), []);
  assert.equal(r.timer(1000), []); // held: nothing sent, a retry counted
  assert.equal(r.timer(2000), []);
  r.accepting = true;
  r.session.resume(2500);
  assert.equal(acks(r.take()), [1]);
  // That ACK is lost: three re-ACKs, as for any ACK, then the upload is given up.
  assert.equal([3500, 4500, 5500].flatMap((t) => acks(r.timer(t))), [1, 1, 1]);
  assert.equal(r.timer(6500).map((p) => p.op), [5]);
});

test("blocks past the window while the ACK is held are dropped, and do not keep the upload alive", () => {
  const r = receiver({ retries: 2 });
  r.start(0);
  r.take();
  r.accepting = false;
  r.feed(data(1, bytesOf(512, 1)), 1);
  // A sender that does not wait for the held ACK 1: one more block before every timeout.
  for (let b = 2; b <= 3; b++) {
    assert.equal(r.feed(data(b, bytesOf(512, b)), (b - 1) * 1000 - 500), []);
    assert.equal(r.timer((b - 1) * 1000), []);
  }
  assert.is(r.received.length, 1, "blocks went into a sink that asked to stop");
  r.feed(data(4, bytesOf(512, 4)), 2500);
  assert.equal(r.timer(3000).map((p) => p.op), [5], "the retries no longer bound the wait");
});

test("an ERROR from the client ends the upload silently", () => {
  const r = receiver();
  r.start(0);
  assert.equal(r.feed(error(3, "disk full"), 1), []);
  assert.is(r.session.state, State.FAILED);
  assert.ok(r.session.failure?.byPeer);
});

test("block numbers wrap on upload too (70000 blocks of 8 bytes)", () => {
  const body = bytesOf(70_000 * 8 + 3, 9);
  const r = receiver({ blksize: 8, windowsize: 8 });
  r.start(0);
  let lastAck = -1;
  for (const [i, p] of blocks(body, 8).entries()) {
    const out = r.feed(p, i);
    if (out.length) lastAck = (out[out.length - 1] as AckPacket).block;
  }
  r.session.finish(true, 1);
  assert.equal(r.data(), body);
  assert.is(lastAck, 70_000 - 65_536, "the last window's ACK carries the wrapped number");
  assert.is(r.session.expected - 1, 70_001);
});

test.run();
