// TftpClient's clock: ClientOptions timeoutMs and retries, and the timeout
// transfer option (RFC 2349), against a server on the fake network that never
// answers (or answers only the OACK). Every datagram the client sends is stamped
// with the fake clock's time, so the schedule is checked to the millisecond.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TftpClient, type TransferOptions } from "../mod.ts";
import { decode, encodeOack } from "../core/codec.ts";
import type { Options, Packet } from "../core/packet.ts";
import type { DatagramTransport, MessageHandler } from "../core/transport.ts";
import { FakeNet } from "./support/fake_runtime.ts";

/** A FakeNet that notes the time of every datagram sent to the server's address. */
class StampedNet extends FakeNet {
  sent: { at: number; port: number; packet: Packet }[] = [];
  override async bind(hostname: string, port: number, onMessage: MessageHandler): Promise<DatagramTransport> {
    const t = await super.bind(hostname, port, onMessage);
    const send = t.send.bind(t);
    return {
      ...t,
      address: t.address,
      port: t.port,
      send: (data, toPort, toAddress, done) => {
        if (toAddress === "127.0.0.1") this.sent.push({ at: this.time, port: toPort, packet: decode(data.slice()) as Packet });
        send(data, toPort, toAddress, done);
      },
      close: () => t.close(),
    };
  }
}

/**
 * Starts `call` against 127.0.0.1:69 where nothing answers but, if `oack` is given, one OACK
 * to the request from a transfer port; then lets 60 s of fake time pass.
 * Returns what the client sent (times in ms) and how the call ended, and when.
 */
async function silentServer(clientOptions: { timeoutMs?: number; retries?: number }, call: (c: TftpClient) => Promise<unknown>, oack?: Options) {
  const net = new StampedNet();
  let from = 0;
  await net.bind("127.0.0.1", 69, (_d, _a, port) => (from = port));
  const tid = await net.bind("127.0.0.1", 0, () => {});
  const client = new TftpClient("127.0.0.1", 69, { runtime: net, ...clientOptions });
  const end = { result: "pending", at: -1 };
  call(client).then(
    () => Object.assign(end, { result: "ok", at: net.time }),
    (e) => Object.assign(end, { result: `${e.code}: ${e.message}`, at: net.time }),
  );
  await net.deliver();
  if (oack) {
    tid.send(encodeOack(oack), from, "0.0.0.0", () => {});
    await net.deliver();
  }
  await net.advance(60_000);
  await net.deliver();
  const toListener = net.sent.filter((s) => s.port === 69);
  const toTransfer = net.sent.filter((s) => s.port === tid.port);
  return { net, end, toListener, toTransfer };
}

const times = (sent: { at: number }[]) => sent.map((s) => s.at);
const schedule = (every: number, count: number) => Array.from({ length: count }, (_, i) => i * every);

for (const [what, options, every, retries] of [
  ["timeoutMs 700, retries 3", { timeoutMs: 700, retries: 3 }, 700, 3],
  ["timeoutMs 250, retries 1", { timeoutMs: 250, retries: 1 }, 250, 1],
  ["timeoutMs 2000, retries 0: one request, no resend", { timeoutMs: 2000, retries: 0 }, 2000, 0],
  ["the defaults: 1000 ms, 5 retries", {}, 1000, 5],
] as const) {
  for (const kind of ["get", "put"] as const) {
    test(`${kind}, ${what}: the request is resent every ${every} ms, ${retries} times, then given up ${every} ms after the last`, async () => {
      const call = (c: TftpClient) => (kind === "get" ? c.get("f") : c.put("f", new Uint8Array(100)));
      const { end, toListener, toTransfer } = await silentServer(options, call);
      assert.equal(times(toListener), schedule(every, retries + 1), "when the request went out");
      assert.ok(toListener.every((s) => s.packet.op === (kind === "get" ? 1 : 2)), "only the request, each time");
      assert.equal(toTransfer, []);
      assert.equal([end.result, end.at], ["0: no answer from the server", (retries + 1) * every]);
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
    test(`${kind} with the timeout option ${what}: the ${kind === "get" ? "ACK 0" : "DATA 1"} is resent every ${every} ms, 3 times, then ERROR 0`, async () => {
      const call = (c: TftpClient) => (kind === "get" ? c.get("f", asked) : c.put("f", new Uint8Array(2000), asked));
      const { end, toListener, toTransfer } = await silentServer({ timeoutMs: 700, retries: 3 }, call, oack);
      assert.equal(toListener.map((s) => [s.at, s.packet.op, (s.packet as { options: Options }).options.timeout]), [[0, kind === "get" ? 1 : 2, "3"]], "the request, with timeout 3, once");
      const resent = toTransfer.slice(0, -1);
      const want = kind === "get" ? [4, 0] : [3, 1];
      assert.equal(resent.map((s) => [s.packet.op, (s.packet as { block: number }).block]), [want, want, want, want]);
      assert.equal(times(resent), schedule(every, 4), "when it went out");
      const last = toTransfer[toTransfer.length - 1];
      assert.equal([last.at, last.packet.op, (last.packet as { message: string }).message], [4 * every, 5, "timed out"]);
      assert.equal([end.result, end.at], ["0: timed out", 4 * every]);
    });
  }
}

test.run();
