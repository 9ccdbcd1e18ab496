// TftpClient's clock: ClientOptions timeoutMs and retries, and the timeout
// transfer option (RFC 2349), against a server on the fake network that never
// answers (or answers only the OACK). The schedule is checked to the millisecond:
// nothing goes out 1 ms before each expected time, exactly one datagram at it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TftpClient, type TransferOptions } from "../mod.ts";
import { decode, encodeOack } from "../core/codec.ts";
import type { Options, Packet } from "../core/packet.ts";
import { FakeNet } from "./support/fake_runtime.ts";

/** A server at 127.0.0.1:69 that hears nothing (its datagrams stay queued) and a transfer port to answer from. */
async function silentServer(clientOptions: { timeoutMs?: number; retries?: number }) {
  const net = new FakeNet();
  await net.bind("127.0.0.1", 69, () => {});
  const tid = await net.bind("127.0.0.1", 0, () => {});
  const client = new TftpClient("127.0.0.1", 69, { runtime: net, ...clientOptions });
  /** Takes the queued datagrams bound for `port`, decoded, with the port they came from. */
  const sentTo = (port: number) => {
    const mine = net.queue.filter((d) => d.to.address === "127.0.0.1" && d.to.port === port);
    net.queue.splice(0, net.queue.length, ...net.queue.filter((d) => !mine.includes(d)));
    return mine.map((d) => ({ packet: decode(d.data) as Packet, from: d.from.port }));
  };
  return { net, tid, client, sentTo };
}

/** Follows `p`: "pending", "ok", or "code: message" of its rejection. */
function track(p: Promise<unknown>): { result: string } {
  const t = { result: "pending" };
  p.then(() => (t.result = "ok"), (e) => (t.result = `${e.code}: ${e.message}`));
  return t;
}

/**
 * Moves the clock to each of `times` (ms, rising) and checks that `sent()` is empty 1 ms
 * before each and holds one datagram at it; returns those datagrams.
 */
async function expectAt(net: FakeNet, times: number[], sent: () => { packet: Packet }[]): Promise<Packet[]> {
  const out: Packet[] = [];
  for (const t of times) {
    if (t > net.time) {
      await net.advance(t - 1 - net.time);
      assert.equal(sent(), [], `sent before ${t} ms (at ${net.time} ms)`);
      await net.advance(1);
    }
    const now = sent();
    assert.is(now.length, 1, `datagrams sent at ${t} ms`);
    out.push(now[0].packet);
  }
  return out;
}

const schedule = (every: number, count: number) => Array.from({ length: count }, (_, i) => i * every);

for (const [what, options, every, retries] of [
  ["timeoutMs 700, retries 3", { timeoutMs: 700, retries: 3 }, 700, 3],
  ["timeoutMs 250, retries 1", { timeoutMs: 250, retries: 1 }, 250, 1],
  ["timeoutMs 2000, retries 0: one request, no resend", { timeoutMs: 2000, retries: 0 }, 2000, 0],
  ["the defaults: 1000 ms, 5 retries", {}, 1000, 5],
] as const) {
  for (const kind of ["get", "put"] as const) {
    test(`${kind}, ${what}: the request is resent every ${every} ms, ${retries} times, then given up ${every} ms after the last`, async () => {
      const { net, client, sentTo } = await silentServer(options);
      const end = track(kind === "get" ? client.get("f") : client.put("f", new Uint8Array(100)));
      await net.deliver(() => false); // lets the client bind and send; delivers nothing
      const requests = await expectAt(net, schedule(every, retries + 1), () => sentTo(69));
      assert.equal(requests.map((p) => p.op), Array(retries + 1).fill(kind === "get" ? 1 : 2), "only the request, each time");
      const giveUp = (retries + 1) * every;
      await net.advance(giveUp - 1 - net.time);
      assert.is(end.result, "pending", `given up before ${giveUp} ms`);
      await net.advance(1);
      assert.is(end.result, "0: no answer from the server");
      await net.advance(10 * every);
      assert.equal(net.queue, [], "something was sent after giving up");
    });
  }
}

// The timeout option: asked for in the request, and once the OACK grants it the data phase
// retransmits on it, not on timeoutMs. Not granted (the OACK leaves it out), timeoutMs stays.
for (const [what, asked, oack, every] of [
  ["granted", { timeout: 3 }, { timeout: "3" }, 3000],
  ["not granted (the OACK answers only blksize)", { timeout: 3, blksize: 1024 }, { blksize: "1024" }, 700],
] as [string, TransferOptions, Options, number][]) {
  for (const kind of ["get", "put"] as const) {
    const repeated = kind === "get" ? "ACK 0" : "DATA 1";
    test(`${kind} with the timeout option ${what}: the ${repeated} is resent every ${every} ms, 3 times, then ERROR 0`, async () => {
      const { net, tid, client, sentTo } = await silentServer({ timeoutMs: 700, retries: 3 });
      const end = track(kind === "get" ? client.get("f", asked) : client.put("f", new Uint8Array(2000), asked));
      await net.deliver(() => false); // lets the client bind and send; delivers nothing
      const [request] = sentTo(69);
      assert.equal([request.packet.op, (request.packet as { options: Options }).options.timeout], [kind === "get" ? 1 : 2, "3"], "the request asks timeout 3");
      tid.send(encodeOack(oack), request.from, "0.0.0.0", () => {});
      await net.deliver((d) => d.from.port === tid.port);
      const resent = await expectAt(net, schedule(every, 4), () => sentTo(tid.port));
      const want = kind === "get" ? [4, 0] : [3, 1];
      assert.equal(resent.map((p) => [p.op, (p as { block: number }).block]), [want, want, want, want], `the ${repeated}, each time`);
      const [error] = await expectAt(net, [4 * every], () => sentTo(tid.port));
      assert.equal([error.op, (error as { message: string }).message], [5, "timed out"]);
      assert.is(end.result, "0: timed out");
      assert.equal(sentTo(69), [], "the request was resent after the OACK");
    });
  }
}

test.run();
