// The server endpoint (core/endpoint.ts) driven directly: datagrams and `now` in, batches and
// events out. Time is a plain number; nothing sleeps, nothing waits for a promise.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeData, encodeRequest } from "../core/codec.ts";
import { type Batch, type EndpointEvent, type EndpointSettings, ServerEndpoint } from "../core/endpoint.ts";
import { IllegalTransition, transitions } from "../core/machine.ts";
import { ErrorCode } from "../core/packet.ts";
import { bytesOf } from "./support/session_driver.ts";

const C = { address: "10.0.0.2", port: 2000 };

function endpoint(over: Partial<EndpointSettings> = {}) {
  const ep = new ServerEndpoint({
    timeoutMs: 1000,
    retries: 5,
    maxBlksize: 65464,
    maxWindowsize: 64,
    maxSessions: 100,
    maxRequestsPerSecond: 100,
    handlerTimeoutMs: 30_000,
    maxUploadSize: 1_000_000,
    singlePort: false,
    drainTimeoutMs: 5000,
    ...over,
  });
  /** Everything out since the last look: decoded packets with their socket, and events. */
  const look = () => {
    const batches: Batch[] = ep.takeBatches();
    const events: EndpointEvent[] = ep.takeEvents();
    for (const b of batches) if (b.owner !== 0) ep.sent(b.owner, b.datagrams.length, 0);
    return {
      packets: batches.flatMap((b) => b.datagrams.map((d) => ({ ...decode(d), socket: b.socket, fresh: b.fresh === true, to: b.port }))),
      events,
    };
  };
  const request = (op: 1 | 2, name: string, options = {}, now = 0, from = C) => ep.receive(0, encodeRequest(op, name, "octet", options), from.address, from.port, now);
  /** A read accepted with an in-memory body: returns the transfer's id, with its socket open and first fill done. */
  const serve = (body: Uint8Array, now = 0, from = C) => {
    request(1, "f", {}, now, from);
    const req = look().events.find((e) => e.type === "request") as { id: number };
    ep.limits(req.id, undefined, now);
    const id = ep.acceptRead(req.id, { size: body.length }, now)!;
    ep.opened(id, now);
    let offset = 0;
    for (let round = 0; round < 4; round++) {
      const fill = ep.takeEvents().find((e) => e.type === "fill") as { target: { count: number; view(i: number): Uint8Array } } | undefined;
      if (!fill) break;
      const before = offset;
      for (let i = 0; i < fill.target.count && offset < body.length; i++) {
        const part = body.subarray(offset, offset + 512);
        fill.target.view(i).set(part);
        offset += part.length;
      }
      ep.filled(id, offset - before, now);
    }
    return id;
  };
  return { ep, look, request, serve };
}

const kinds = (events: EndpointEvent[]) => events.map((e) => e.type);

test("transition tables: allowed moves pass, others throw IllegalTransition naming the machine", () => {
  const go = transitions<"a" | "b" | "c">("demo", { a: ["b"], b: ["c"], c: [] });
  assert.is(go("a", "b"), "b");
  assert.is(go("b", "b"), "b");
  assert.throws(() => go("a", "c"), (e: unknown) => e instanceof IllegalTransition && /demo.*"a".*"c"/.test((e as Error).message));
  assert.throws(() => go("c", "a"), (e: unknown) => e instanceof IllegalTransition);
});

// [what, handlerTimeoutMs, answer time, the ERROR the client gets (null: the transfer starts)]
const deadlines: [string, number, number, string | null][] = [
  ["a handler that answers in time", 30_000, 29_999, null],
  ["a handler exactly at its deadline", 30_000, 30_000, "handler timed out"],
  ["a late handler", 30_000, 45_000, "handler timed out"],
  ["a short deadline", 50, 60, "handler timed out"],
];
for (const [what, handlerTimeoutMs, at, error] of deadlines) {
  test(`handler deadline: ${what}`, () => {
    const { ep, look, request } = endpoint({ handlerTimeoutMs });
    request(1, "f");
    const { events } = look();
    const id = (events[0] as { id: number }).id;
    assert.is(ep.nextTimer, handlerTimeoutMs, "the deadline is the endpoint's next timer");
    ep.limits(id, undefined, 0);
    if (at >= ep.nextTimer) ep.handleTimer(at);
    const transfer = ep.acceptRead(id, { size: 10 }, at);
    const out = look();
    if (error === null) {
      assert.type(transfer, "number");
      assert.equal(out.packets, []);
      assert.equal(kinds(out.events), ["open"]);
    } else {
      assert.is(transfer, null, "a late answer is refused: the driver closes the body");
      assert.equal(out.packets.map((p) => [p.op, (p as { message?: string }).message, p.fresh]), [[5, error, true]]);
      const report = out.events.find((e) => e.type === "report") as { event: { reason: string; handlerMs: number } };
      assert.is(report.event.reason, "handler_timeout");
      assert.is(report.event.handlerMs, handlerTimeoutMs);
      assert.is(ep.load, 0);
    }
  });
}

// [what, maxRequestsPerSecond, request times, how many are answered]
const rates: [string, number, number[], number][] = [
  ["within the rate", 3, [0, 0, 0], 3],
  ["a burst over it", 3, [0, 0, 0, 0, 0], 3],
  ["the bucket refills", 2, [0, 0, 0, 1000, 1000], 4],
  ["one a second forever", 1, [0, 1000, 2000, 3000], 4],
];
for (const [what, maxRequestsPerSecond, times, answered] of rates) {
  test(`rate limit: ${what}`, () => {
    const { look, request } = endpoint({ maxRequestsPerSecond });
    let requests = 0;
    let drops = 0;
    times.forEach((t, i) => {
      request(1, "f", {}, t, { address: C.address, port: 3000 + i });
      for (const e of look().events) {
        if (e.type === "request") requests++;
        if (e.type === "report" && e.event.dropped) drops += e.event.dropped;
      }
    });
    assert.is(requests, answered);
    // The first drop is told at once; the rest within the next second's report.
    assert.is(drops > 0, answered < times.length);
  });
}

test("dropped requests: the first is reported at once, the rest as one count a second later", () => {
  const { ep, look, request } = endpoint({ maxSessions: 1 });
  request(1, "f", {}, 0, { address: C.address, port: 1 });
  look();
  for (let i = 0; i < 5; i++) request(1, "f", {}, 10 * i, { address: C.address, port: 10 + i });
  const first = look().events.filter((e) => e.type === "report").map((e) => (e as { event: { dropped?: number } }).event.dropped);
  assert.equal(first, [1]);
  assert.is(ep.nextTimer, 1000);
  ep.handleTimer(999.9);
  assert.equal(look().events, []);
  ep.handleTimer(1000);
  const later = look().events.map((e) => (e as { event: { dropped?: number; reason?: string } }).event);
  assert.equal(later.map((e) => [e.dropped, e.reason]), [[4, "busy"]]);
});

test("an upload whose verdict never comes gets ERROR 0 at the verdict deadline, and its handler's signal aborts", () => {
  const { ep, look, request } = endpoint({ handlerTimeoutMs: 5000 });
  request(2, "up");
  const id = (look().events[0] as { id: number }).id;
  ep.limits(id, undefined, 0, false);
  const { transfer, upload } = ep.acceptWrite(id, 0)!;
  ep.opened(transfer, 0);
  assert.equal(look().packets.map((p) => [p.op, (p as { block?: number }).block]), [[4, 0]]);
  ep.receive(transfer, encodeData(1, bytesOf(100)), C.address, C.port, 10);
  assert.equal(look().packets, [], "the last block waits for the verdict");
  // Earlier wake-ups (the ACK 0's old deadline, the request's) find nothing due.
  for (let t = ep.nextTimer; t < 5010; t = ep.nextTimer) {
    ep.handleTimer(t);
    assert.equal(look().packets, []);
  }
  assert.is(ep.nextTimer, 5010);
  ep.handleTimer(5009);
  assert.equal(look().packets, []);
  ep.handleTimer(5010);
  assert.equal(look().packets.map((p) => [p.op, (p as { message?: string }).message]), [[5, "handler timed out"]]);
  assert.ok(upload.signal.aborted);
  ep.verdict(transfer, { ok: true }, 6000); // too late: nothing changes
  assert.equal(look().packets, []);
});

// [verdict, when (before or after the last block), what the client gets for its last block]
const verdicts: [string, { ok: true } | { ok: false; code: number; message: string }, "before" | "after", [number, number][]][] = [
  ["ok after the data", { ok: true }, "after", [[4, 1]]],
  ["ok before the data ends", { ok: true }, "before", [[4, 1]]],
  ["refused after the data", { ok: false, code: ErrorCode.DISK_FULL, message: "full" }, "after", [[5, 3]]],
  ["refused before the data ends", { ok: false, code: ErrorCode.ACCESS_VIOLATION, message: "no" }, "before", [[5, 2]]],
];
for (const [what, verdict, when, expected] of verdicts) {
  test(`upload verdict: ${what}`, () => {
    const { ep, look, request } = endpoint();
    request(2, "up");
    const id = (look().events[0] as { id: number }).id;
    ep.limits(id, undefined, 0, false);
    const { transfer } = ep.acceptWrite(id, 0)!;
    ep.opened(transfer, 0);
    look();
    if (when === "before") ep.verdict(transfer, verdict, 5);
    ep.receive(transfer, encodeData(1, bytesOf(10)), C.address, C.port, 10);
    if (when === "after") ep.verdict(transfer, verdict, 20);
    const got = look().packets.map((p) => [p.op, p.op === 4 ? (p as { block: number }).block : (p as { code: number }).code]);
    assert.equal(got, expected);
  });
}

test("a new request from the port of a dallying upload ends the dally and is answered at once", () => {
  const { ep, look, request } = endpoint();
  request(2, "up");
  const id = (look().events[0] as { id: number }).id;
  ep.limits(id, undefined, 0, false);
  const { transfer } = ep.acceptWrite(id, 0)!;
  ep.opened(transfer, 0);
  ep.receive(transfer, encodeData(1, bytesOf(10)), C.address, C.port, 10);
  ep.verdict(transfer, { ok: true }, 10);
  look();
  assert.is(ep.load, 1, "dallying");
  request(1, "other", {}, 20);
  const out = look();
  assert.ok(kinds(out.events).includes("request"), "answered, not taken for a repeat");
  assert.ok(out.events.some((e) => e.type === "close" && e.socket === transfer), "the upload's socket closes");
});

test("drain: close() waits drainTimeoutMs for a live transfer, then ends it with ERROR 0; then handlers get as long", () => {
  const { ep, look, serve } = endpoint({ drainTimeoutMs: 3000 });
  const id = serve(bytesOf(5000), 0);
  look();
  ep.close(100);
  assert.equal(kinds(look().events), []);
  assert.is(ep.nextTimer, 1000, "the transfer's own timeout comes first");
  ep.receive(id, encodeAck(1), C.address, C.port, 200);
  look();
  ep.handleTimer(3099);
  assert.ok(!look().packets.some((p) => p.op === 5));
  ep.handleTimer(3100);
  const out = look();
  assert.equal(out.packets.filter((p) => p.op === 5).map((p) => (p as { message: string }).message), ["server shutting down"]);
  assert.ok(kinds(out.events).includes("drained"));
  ep.handleTimer(6099);
  assert.ok(!kinds(look().events).includes("closed"));
  ep.handleTimer(6100);
  assert.ok(kinds(look().events).includes("closed"), "handlers that never settle do not hold close() forever");
});

test("drain: with nothing live, close() is drained at once, and closed as soon as the handlers have settled", () => {
  const { ep, look, request } = endpoint();
  ep.close(0);
  assert.equal(kinds(look().events), ["drained"]);
  request(1, "f", {}, 1);
  assert.equal(look().packets.map((p) => (p as { message: string }).message), ["server shutting down"]);
  ep.settled(2);
  assert.equal(kinds(look().events), ["closed"]);
});

test("the block-number wrap: a read of 65535 x blksize + 1 bytes ends on block 0 after 65535 (rollover 0)", () => {
  const { ep, look, request } = endpoint();
  const size = 65535 * 8 + 1;
  request(1, "f", { blksize: "8", windowsize: "64" });
  const id = (look().events[0] as { id: number }).id;
  ep.limits(id, undefined, 0);
  const transfer = ep.acceptRead(id, { size }, 0)!;
  ep.opened(transfer, 0);
  look(); // the OACK
  ep.receive(transfer, encodeAck(0), C.address, C.port, 1);
  let sent = 0;
  let lastBlock = -1;
  let lastLength = -1;
  for (let round = 0; round < 10_000 && !ep.isFinished(transfer); round++) {
    for (const e of ep.takeEvents()) {
      if (e.type !== "fill") continue;
      const n = Math.min(e.target.count * 8, size - sent);
      ep.filled(transfer, n, 2);
      sent += n;
    }
    const batches = ep.takeBatches();
    let high = -1;
    for (const b of batches) {
      for (const d of b.datagrams) {
        const p = decode(d) as { block: number; payload: Uint8Array };
        lastBlock = p.block;
        lastLength = p.payload.length;
        high = p.block;
      }
      if (b.owner) ep.sent(b.owner, b.datagrams.length, 2);
    }
    if (high >= 0) ep.receive(transfer, encodeAck(high), C.address, C.port, 3);
  }
  assert.is(sent, size);
  assert.equal([lastBlock, lastLength], [0, 1], "block 65536 goes out as 0 with the one byte left");
  assert.ok(ep.isFinished(transfer));
});

// [what, single port, how many copies of the request, transfers started, first packets sent]
const repeats: [string, boolean, number, number, number][] = [
  ["a port per transfer: each copy gets a sibling, up to MAX_SIBLINGS", false, 6, 4, 4],
  ["a port per transfer: one copy, two siblings", false, 2, 2, 2],
  ["single port: a copy resends the first packet at once, no new transfer", true, 3, 1, 3],
];
for (const [what, singlePort, copies, transfers, firsts] of repeats) {
  test(`repeated requests before the client answers: ${what}`, () => {
    const { ep, look, request } = endpoint({ singlePort });
    let opened = 0;
    let oacks = 0;
    for (let i = 0; i < copies; i++) {
      request(1, "f", { tsize: "0" }, i);
      const first = look();
      oacks += first.packets.filter((p) => p.op === 6).length;
      for (const e of first.events) {
        if (e.type !== "request") continue;
        ep.limits(e.id, undefined, i);
        const t = ep.acceptRead(e.id, { size: 100 }, i)!;
        if (!singlePort) ep.opened(t, i);
        opened++;
      }
      oacks += look().packets.filter((p) => p.op === 6).length;
    }
    assert.is(opened, transfers);
    assert.is(oacks, firsts);
  });
}

test("siblings: the one the client answers goes on, the others end without a word", () => {
  const { ep, look, request } = endpoint();
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) {
    request(1, "f", { tsize: "0" }, i);
    const e = look().events.find((x) => x.type === "request") as { id: number };
    ep.limits(e.id, undefined, i);
    ids.push(ep.acceptRead(e.id, { size: 100 }, i)!);
    ep.opened(ids[i], i);
  }
  look();
  ep.receive(ids[1], encodeAck(0), C.address, C.port, 10);
  const early = ep.takeEvents();
  const fill = early.find((e) => e.type === "fill") as { transfer: number };
  assert.is(fill.transfer, ids[1], "only the answered one reads its file");
  ep.filled(ids[1], 100, 10);
  const out = look();
  out.events.unshift(...early);
  assert.equal(out.packets.map((p) => [p.op, p.socket]), [[3, ids[1]]], "DATA 1 from the answered one only");
  const closed = out.events.filter((e) => e.type === "close").map((e) => (e as { socket: number }).socket).sort();
  assert.equal(closed, [ids[0], ids[2]].sort());
  assert.equal(out.events.filter((e) => e.type === "report"), [], "no event for the dropped siblings");
});

test.run();
