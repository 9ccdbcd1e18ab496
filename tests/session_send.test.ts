// The sending side of core/session.ts, sans I/O, on a fake clock: what it
// sends for each packet received and each deadline passed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { encodeOack } from "../core/codec.ts";
import type { DataPacket, Packet } from "../core/packet.ts";
import { PACE_MS, PROBE_MS, PROBE_RTTS, ringSlots, State, wireBlock } from "../core/session.ts";
import { ack, bytesOf, concat, error, type Sender, sender } from "./support/session_driver.ts";

const isData = (p: Packet): p is DataPacket => p.op === 3;

/** A well-behaved client: ACKs the last block of each window. Returns the blocks it got, in order. */
function download(s: Sender, windowsize: number, now = 0): DataPacket[] {
  s.session.start(now);
  s.pump(now);
  let pending = s.out();
  const got: DataPacket[] = [];
  let guard = 0;
  while (pending.length > 0) {
    assert.ok(++guard < 1_000_000, "transfer does not end");
    assert.ok(pending.length <= windowsize, `sent ${pending.length} blocks in a window of ${windowsize}`);
    const blocks = pending.filter(isData);
    assert.is(blocks.length, pending.length, "only DATA is sent");
    got.push(...blocks);
    pending = s.feed(ack(blocks[blocks.length - 1].block), now);
  }
  return got;
}

for (const blksize of [8, 512]) {
  for (const windowsize of [1, 4]) {
    for (const size of [0, 1, blksize - 1, blksize, blksize + 1, 2 * blksize, 5 * blksize, 5 * blksize + 3]) {
      test(`read of ${size} bytes at blksize ${blksize}, windowsize ${windowsize}`, () => {
        const body = bytesOf(size, size + 7);
        const s = sender(body, { blksize, windowsize });
        const got = download(s, windowsize);
        assert.equal(concat(got.map((d) => d.payload)), body);
        // A length that is a multiple of blksize (0 included) ends with an empty block.
        assert.is(got.length, Math.floor(size / blksize) + 1);
        assert.ok(got[got.length - 1].payload.length < blksize);
        got.forEach((d, i) => assert.is(d.block, i + 1));
        assert.is(s.session.state, State.DONE);
        assert.is(s.session.bytes, size);
        assert.is(s.session.deadline, Infinity);
        s.free();
      });
    }
  }
}

test("block numbers wrap from 65535 to 0 and the data survives (70000 blocks)", () => {
  const blocks = 70_000;
  const body = bytesOf(blocks * 8 + 5, 3);
  const s = sender(body, { blksize: 8, windowsize: 16 });
  const got = download(s, 16);
  assert.is(got.length, blocks + 1);
  assert.is(got[65534].block, 65535);
  assert.is(got[65535].block, 0);
  assert.is(got[65536].block, 1);
  assert.equal(concat(got.map((d) => d.payload)), body);
  assert.is(s.session.state, State.DONE);
  s.free();
});

test("a duplicate ACK never causes a resend (Sorcerer's Apprentice)", () => {
  const s = sender(bytesOf(5000), { blksize: 512 });
  s.session.start(0);
  s.pump(0);
  assert.is((s.out()[0] as DataPacket).block, 1);
  assert.is((s.feed(ack(1), 10)[0] as DataPacket).block, 2);
  assert.equal(s.feed(ack(1), 20), [], "duplicate ACK 1 answered");
  assert.equal(s.feed(ack(1), 30), [], "duplicate ACK 1 answered");
  assert.is((s.feed(ack(2), 40)[0] as DataPacket).block, 3);
  s.free();
});

test("an ACK for a block not yet sent is ignored", () => {
  const s = sender(bytesOf(5000));
  s.session.start(0);
  s.pump(0);
  s.out();
  assert.equal(s.feed(ack(7), 1), []);
  assert.is(s.session.acked, 0);
  assert.is((s.feed(ack(1), 2)[0] as DataPacket).block, 2);
  s.free();
});

test("lock-step at blksize 65464: every read after the first brings at least two blocks", () => {
  // A read costs a thread-pool round trip on Node: one per 64 KiB block was measurably dearer.
  const blksize = 65464;
  const body = bytesOf(blksize * 9 + 100, 3);
  const s = sender(body, { blksize });
  assert.equal(concat(download(s, 1).map((d) => d.payload)), body);
  const last = s.fills.length - 1;
  assert.ok(last > 1, `only ${s.fills.length} fills`);
  s.fills.forEach((count, i) => assert.ok(count >= 2 || i === last, `fill ${i} asked for ${count} block(s): ${s.fills}`));
  s.free();
  // The floor leaves smaller blocks alone: 32 KiB blocks still fit the arena's 128 KiB class.
  assert.ok(ringSlots(32768, 1) * (32768 + 4) <= 128 * 1024, `${ringSlots(32768, 1)} slots of 32 KiB`);
});

test("the first fill brings one window, and the second is read while it is in flight", () => {
  const s = sender(bytesOf(512 * 200, 4), { windowsize: 16 });
  s.session.start(0);
  s.pump(0);
  assert.equal(s.fills, [16, 16], "the first DATA waited for two windows of reading");
  assert.is(s.out().length, 16);
  s.free();
});

test("a timeout resends the window; retries run out into ERROR 0", () => {
  const s = sender(bytesOf(5000), { retries: 2, timeoutMs: 1000 });
  s.session.start(0);
  s.pump(0);
  s.out();
  assert.is(s.session.deadline, 1000);
  assert.equal(s.timer(999), [], "fired early");
  const r1 = s.timer(1000);
  assert.is(r1.length, 1);
  assert.is((r1[0] as DataPacket).block, 1);
  assert.is(s.session.deadline, 2000);
  assert.is((s.timer(2000)[0] as DataPacket).block, 1);
  const end = s.timer(3000);
  assert.is(end.length, 1);
  assert.equal({ op: end[0].op, code: (end[0] as { code: number }).code }, { op: 5, code: 0 });
  assert.is(s.session.state, State.FAILED);
  assert.is(s.session.retransmits, 2);
  s.free();
});

test("a retransmission after an ACK counts from that ACK: retries reset on progress", () => {
  const s = sender(bytesOf(5000), { retries: 1 });
  s.session.start(0);
  s.pump(0);
  s.out();
  s.timer(1000); // retry 1 of 1
  s.feed(ack(1), 1500);
  assert.is((s.timer(2500)[0] as DataPacket).block, 2, "progress did not reset the retry count");
  s.free();
});

test("an ERROR from the client ends the transfer silently", () => {
  const s = sender(bytesOf(5000));
  s.session.start(0);
  s.pump(0);
  s.out();
  assert.equal(s.feed(error(0, "user cancelled"), 5), []);
  assert.is(s.session.state, State.FAILED);
  assert.equal(s.session.failure, { code: 0, message: "user cancelled", byPeer: true });
  assert.equal(s.timer(10_000), [], "a failed session still retransmits");
  s.free();
});

test("a DATA sent to a sender is an illegal operation: ERROR 4", () => {
  const s = sender(bytesOf(100));
  s.session.start(0);
  s.pump(0);
  s.out();
  const out = s.feed(new Uint8Array([0, 3, 0, 1, 9]), 1);
  assert.is(out[0].op, 5);
  assert.is((out[0] as { code: number }).code, 4);
  assert.is(s.session.state, State.FAILED);
  s.free();
});

test("a lost block mid-window: the receiver's ACK of the last in-order block makes the sender resume after it", () => {
  const s = sender(bytesOf(512 * 20), { windowsize: 4 });
  s.session.start(0);
  s.pump(0);
  assert.equal(s.out().map((p) => (p as DataPacket).block), [1, 2, 3, 4]);
  // block 3 lost: the client has 1, 2 and ACKs 2. The path took two back to back: the window (4)
  // goes on in bursts of two, PACE_MS apart.
  assert.equal(s.feed(ack(2), 5).map((p) => (p as DataPacket).block), [3, 4]);
  assert.equal(s.timer(5 + PACE_MS).map((p) => (p as DataPacket).block), [5, 6]);
  assert.equal(s.feed(ack(6), 6.5).map((p) => (p as DataPacket).block), [], "no pause before the next window");
  assert.equal(s.timer(7 + PACE_MS).map((p) => (p as DataPacket).block), [7, 8]);
  s.free();
});

// The burst (blocks sent back to back; the rest of the window follows PACE_MS apart) for sequences of
// ACKs and timeouts. Each step: what happens at time t, then the blocks sent and the burst after it.
// "pace" is the timer of the pause between two bursts; "probe" the early resend of a window whose ACK
// is late (PROBE_MS, 50 ms, after the window went out); "timeout" the retransmission timer (1000 ms).
type Step = [t: number, event: "ack" | "pace" | "probe" | "timeout", block: number, sent: number[], burst: number];
const bursts: [name: string, windowsize: number, steps: Step[]][] = [
  ["no loss: whole windows, never a pause", 8, [
    [0, "ack", 8, [9, 10, 11, 12, 13, 14, 15, 16], 8],
    [1, "ack", 16, [17, 18, 19, 20, 21, 22, 23, 24], 8],
  ]],
  ["a card that takes one datagram per burst (U-Boot on e1000): the window's early resend brings its gap ACK", 8, [
    [49, "pace", 0, [], 8], // not yet
    [50, "probe", 0, [1, 2, 3, 4], 4], // it has only block 1 and waits for 8: silent
    [51, "pace", 0, [5, 6, 7, 8], 4],
    [51.5, "ack", 1, [], 1], // of 5..8 it took 5, out of order: it ACKs 1 (the pause under way stays)
    [52, "pace", 0, [2], 1],
    [53, "pace", 0, [3], 1],
    [54, "pace", 0, [4], 1],
    [55, "pace", 0, [5], 1],
    [56, "pace", 0, [6], 1],
    [57, "pace", 0, [7], 1],
    [58, "pace", 0, [8], 1],
    [59, "pace", 0, [9], 1],
    [59.5, "ack", 9, [], 1], // the window 2..9 got through whole at 1: proven 1, and no growth beyond
    [60, "pace", 0, [10], 1],
  ]],
  ["a lost tail after a gap ACK (U-Boot ACKs a gap once per block count): the early resend starts at the block it lacks", 4, [
    [1, "ack", 1, [2], 1],
    [2, "pace", 0, [3], 1],
    [3, "pace", 0, [4], 1],
    [4, "pace", 0, [5], 1], // the window 2..5 is out; block 2 is lost, the rest arrive out of order: silence
    [54, "probe", 0, [2], 1],
    [55, "pace", 0, [3], 1],
    [56, "pace", 0, [4], 1],
    [57, "pace", 0, [5], 1],
    [57.5, "ack", 5, [], 1],
    [58, "pace", 0, [6], 1],
  ]],
  ["an early resend, then a timeout with nothing back: each halves the burst and resends from the first block unacknowledged", 8, [
    [50, "probe", 0, [1, 2, 3, 4], 4],
    [51, "pace", 0, [5, 6, 7, 8], 4],
    [1000, "probe", 0, [], 4], // once per window
    [1051, "timeout", 0, [1, 2], 2],
    [1052, "pace", 0, [3, 4], 2],
    [1052.5, "ack", 6, [], 2], // blocks 1..6 arrived (some from before the timeout): no pause is cut short
    [1053, "pace", 0, [7, 8], 2],
  ]],
  ["random loss after a whole window: the burst shrinks to what got through, then grows back to the proven size", 4, [
    [0, "ack", 4, [5, 6, 7, 8], 4], // proven 4
    [1, "ack", 6, [7, 8], 2], // block 7 lost: two got through back to back
    [2, "pace", 0, [9, 10], 2],
    [2.5, "ack", 10, [], 3], // the window 7..10 arrived whole: grow by one (after the pause)
    [3, "pace", 0, [11, 12, 13], 3],
    [4, "pace", 0, [14], 3],
    [4.5, "ack", 14, [], 4],
    [5, "pace", 0, [15, 16, 17, 18], 4],
    [6, "ack", 18, [19, 20, 21, 22], 4], // the whole window again: no more pauses
  ]],
  ["a loss in the very first window: bursts grow no further than a whole window has shown", 8, [
    [0, "ack", 3, [4, 5, 6], 3],
    [1, "pace", 0, [7, 8, 9], 3],
    [2, "pace", 0, [10, 11], 3],
    [2.5, "ack", 11, [], 3],
    [3, "pace", 0, [12, 13, 14], 3],
  ]],
];

for (const [name, windowsize, steps] of bursts) {
  // "probe" and "pace" are the same call (the session's timer); the name says which is due.
  test(`bursts: ${name}`, () => {
    const s = sender(bytesOf(512 * 200, 6), { windowsize, timeoutMs: 1000 });
    s.session.start(0);
    s.pump(0);
    assert.equal(s.out().map((p) => (p as DataPacket).block), Array.from({ length: windowsize }, (_, i) => i + 1));
    let smallest = windowsize;
    for (const [t, event, block, sent, burst] of steps) {
      const out = event === "ack" ? s.feed(ack(block), t) : s.timer(t);
      const what = `${event}${event === "ack" ? ` ${block}` : ""} at ${t}`;
      assert.equal(out.map((p) => (p as DataPacket).block), sent, `blocks sent on ${what}`);
      assert.is(s.session.burst, burst, `burst after ${what}`);
      smallest = Math.min(smallest, burst);
    }
    assert.is(s.session.minBurst, smallest);
    s.free();
  });
}

test("bursts: a pause never delays the retransmission timer, and the window is never exceeded", () => {
  const s = sender(bytesOf(512 * 100, 6), { windowsize: 4, timeoutMs: 1000 });
  s.session.start(0);
  s.pump(0);
  s.out();
  s.feed(ack(1), 1); // burst 1
  assert.is(s.session.paceAt, 1 + PACE_MS);
  assert.is(s.session.deadline, 1001);
  for (let t = 2; t < 20; t++) s.timer(t);
  assert.is(s.session.sent, 5, "sent past the window 2..5");
});

test("early resend: PROBE_MS after a whole window, once, no retry spent, no proof of the burst; never in lock-step", () => {
  const s = sender(bytesOf(512 * 100, 6), { windowsize: 4, timeoutMs: 1000 });
  s.session.start(0);
  s.pump(0);
  assert.equal(s.out().map((p) => (p as DataPacket).block), [1, 2, 3, 4]);
  assert.is(s.session.probeAt, PROBE_MS);
  assert.equal(s.timer(PROBE_MS - 1), [], "early");
  assert.equal(s.timer(PROBE_MS).map((p) => (p as DataPacket).block), [1, 2], "the window again, in halved bursts");
  assert.equal(s.timer(PROBE_MS + PACE_MS).map((p) => (p as DataPacket).block), [3, 4]);
  assert.is(s.session.probeAt, Infinity, "a second early resend of the same window");
  assert.is(s.session.retransmits, 1);
  assert.is(s.session.deadline, PROBE_MS + PACE_MS + 1000, "the retransmission timer runs from the last send");
  // The ACK may answer the first copies: the window is whole, but not proof that bursts of 2 pass.
  s.feed(ack(4), 60);
  assert.equal([s.session.proven, s.session.burst], [0, 2]);
  // The next window, answered in time: no early resend, and it proves its burst.
  s.timer(61);
  assert.is(s.session.probeAt, 61 + PROBE_MS);
  s.feed(ack(8), 62);
  assert.equal([s.session.probeAt, s.session.proven], [Infinity, 2]);
  s.free();

  // No retry spent: with retries 1, the early resend still leaves one timeout's resend.
  const one = sender(bytesOf(512 * 100, 6), { windowsize: 4, timeoutMs: 1000, retries: 1 });
  one.session.start(0);
  one.pump(0);
  one.out();
  assert.equal(one.timer(PROBE_MS).map((p) => (p as DataPacket).block), [1, 2]);
  one.timer(PROBE_MS + PACE_MS);
  assert.equal(one.timer(PROBE_MS + PACE_MS + 1000).map((p) => (p as DataPacket).block), [1], "the timeout's resend");
  assert.is(one.session.state, State.TRANSFERRING);
  one.free();

  const lockstep = sender(bytesOf(512 * 10, 6), { windowsize: 1, timeoutMs: 1000 });
  lockstep.session.start(0);
  lockstep.pump(0);
  lockstep.out();
  assert.is(lockstep.session.probeAt, Infinity);
  assert.equal(lockstep.timer(500), []);
  lockstep.free();
});

test("early resend on a slow path: PROBE_RTTS measured round trips, not PROBE_MS (a WAN's ACKs are not late)", () => {
  const oack = encodeOack({ windowsize: "4" });
  const s = sender(bytesOf(512 * 100, 6), { windowsize: 4, timeoutMs: 2000, oack });
  s.session.start(0);
  s.pump(0);
  s.out();
  // OACK to ACK 0: 100 ms, the first sample.
  assert.equal(s.feed(ack(0), 100).map((p) => (p as DataPacket).block), [1, 2, 3, 4]);
  assert.is(s.session.srtt, 100);
  assert.is(s.session.probeAt, 100 + PROBE_RTTS * 100);
  assert.equal(s.timer(100 + PROBE_MS), [], "an ACK 50 ms late on a 100 ms path is not late");
  // The window answered after 120 ms: the estimate moves by an eighth of the difference.
  assert.equal(s.feed(ack(4), 220).map((p) => (p as DataPacket).block), [5, 6, 7, 8]);
  assert.is(s.session.srtt, 102.5);
  assert.is(s.session.probeAt, 220 + PROBE_RTTS * 102.5);
  assert.equal(s.timer(220 + PROBE_RTTS * 102.5).map((p) => (p as DataPacket).block), [5, 6], "late after 4 round trips");
  // Its ACK may answer the first copies: no sample (Karn's rule).
  s.timer(220 + PROBE_RTTS * 102.5 + PACE_MS);
  s.feed(ack(8), 700);
  assert.is(s.session.srtt, 102.5);
  s.free();
});

test("with options: the OACK goes first, alone; ACK 0 starts the data; a timeout resends the OACK", () => {
  const oack = encodeOack({ blksize: "1024", windowsize: "8" });
  const s = sender(bytesOf(100_000), { blksize: 1024, windowsize: 8, oack });
  s.session.start(0);
  s.pump(0);
  const first = s.out();
  assert.equal(first, [{ op: 6, options: { blksize: "1024", windowsize: "8" } }], "only the OACK before the first ACK");
  assert.equal(s.feed(ack(1), 1), [], "ACK 1 cannot answer an OACK");
  assert.equal(s.timer(1000), first, "OACK not retransmitted");
  const window = s.feed(ack(0), 1001);
  assert.equal(window.map((p) => (p as DataPacket).block), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.is((window[0] as DataPacket).payload.length, 1024);
  s.free();
});

test("reordered ACKs: an old ACK after a newer one changes nothing", () => {
  const s = sender(bytesOf(512 * 40), { windowsize: 4 });
  s.session.start(0);
  s.pump(0);
  s.out();
  s.feed(ack(4), 1);
  assert.equal(s.feed(ack(2), 2), [], "old ACK moved the window back");
  assert.is(s.session.acked, 4);
  s.free();
});

test("duplicated packets: every ACK twice still gives the file exactly once", () => {
  const body = bytesOf(512 * 7 + 100);
  const s = sender(body, { windowsize: 2 });
  s.session.start(0);
  s.pump(0);
  let pending = s.out();
  const got: DataPacket[] = [];
  while (pending.length > 0) {
    got.push(...(pending as DataPacket[]));
    const a = ack(pending[pending.length - 1].op === 3 ? (pending[pending.length - 1] as DataPacket).block : 0);
    pending = s.feed(a, 0);
    assert.equal(s.feed(a, 0), [], "a duplicated ACK produced packets");
  }
  assert.equal(concat(got.map((d) => d.payload)), body);
  s.free();
});

test("rolling over to 1: block 65535 is followed by 1, ACKs map back across the wrap", () => {
  const blocks = 140_000; // past the wrap twice: 65535, then 1..65535 again, then 1..
  const body = bytesOf(blocks * 8 + 3, 5);
  const s = sender(body, { blksize: 8, windowsize: 16, rollover: 1 });
  const got = download(s, 16);
  assert.is(got.length, blocks + 1);
  assert.equal([got[65533].block, got[65534].block, got[65535].block, got[65536].block], [65534, 65535, 1, 2]);
  assert.equal([got[131069].block, got[131070].block], [65535, 1]);
  assert.ok(got.every((d) => d.block !== 0), "no block 0 is sent");
  assert.equal(concat(got.map((d) => d.payload)), body);
  assert.is(s.session.state, State.DONE);
  s.free();
});

test("rolling over to 1: an ACK 0 past the wrap is a stray, not an ACK inside the window", () => {
  const s = sender(bytesOf(132_000 * 8, 9), { blksize: 8, windowsize: 4, rollover: 1 });
  s.session.start(0);
  s.pump(0);
  let pending = s.out();
  // Block 131068 is 65533 on the wire: taken modulo 65535, an ACK 0 would land two blocks on, inside the window.
  while (s.session.acked < 131_068) pending = s.feed(ack((pending.filter(isData).at(-1)!).block), 0);
  const acked = s.session.acked;
  assert.is(acked, 131_068);
  assert.equal(s.feed(ack(0), 0), [], "nothing is sent for it");
  assert.is(s.session.acked, acked);
  s.free();
});

test("wireBlock: 16-bit block numbers rolling over to 0 or to 1", () => {
  assert.equal([1, 65535, 65536, 65537, 131071, 131072].map((q) => wireBlock(q, 0)), [1, 65535, 0, 1, 65535, 0]);
  assert.equal([1, 65535, 65536, 65537, 131070, 131071].map((q) => wireBlock(q, 1)), [1, 65535, 1, 2, 65535, 1]);
});

test.run();
