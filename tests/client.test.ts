// TftpClient (drivers/client.ts) against a scripted server on the fake network: what
// it accepts from a server's OACK and its data, and what it reports. Time is an input.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_MAX_GET, TftpClient, TftpServerError } from "../drivers/client.ts";
import { decode, encodeAck, encodeData, encodeError, encodeOack } from "../core/codec.ts";
import { TftpError } from "../core/errors.ts";
import type { Options, Packet } from "../core/packet.ts";
import { FakeNet, fakePeer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

/** A client, a listening "server" that keeps what it hears, and a transfer port to answer from (to 0.0.0.0: the client binds the wildcard address). */
async function scripted() {
  const net = new FakeNet();
  const heard: { packet: Packet; port: number }[] = [];
  await net.bind("127.0.0.1", 69, (data, _a, port) => heard.push({ packet: decode(data.slice()) as Packet, port }));
  const tid = await fakePeer(net, "127.0.0.1");
  const client = new TftpClient("127.0.0.1", 69, { runtime: net, timeoutMs: 1000, retries: 2 });
  return { net, heard, tid, client };
}

/** Follows `p` from now on (a rejection is handled at once): "pending", "ok", or the TftpError's code and message. */
function track(p: Promise<unknown>): { result: string } {
  const t = { result: "pending" };
  p.then(() => (t.result = "ok"), (e) => (t.result = e instanceof TftpError ? `error ${e.code}: ${e.message}` : `other: ${e}`));
  return t;
}

/** Lets the fake network's time run until `t` settles (or ten timeouts pass). */
async function outcome(net: FakeNet, t: { result: string }): Promise<string> {
  for (let i = 0; i < 10 && t.result === "pending"; i++) {
    await net.deliver();
    await net.advance(1000);
  }
  return t.result;
}

const oackCases: [string, Options, Options, RegExp][] = [
  ["a timeout that is not a number", { blksize: 1024 } as never, { blksize: "1024", timeout: "abc" }, /^error 8: the server answered an option not asked for: timeout$/],
  ["a timeout other than the one asked for", { blksize: 1024, timeout: 2 } as never, { blksize: "1024", timeout: "255" }, /^error 8: .*timeout option with another value$/],
  ["an option not asked for", {}, { tsize: "10" }, /^error 8: the server answered an option not asked for: tsize$/],
  ["a tsize that is not a size", { tsize: true } as never, { tsize: "-1" }, /^error 8: .*tsize with a value that is not a size$/],
];

for (const [what, asked, answered, expected] of oackCases) {
  test(`an OACK with ${what} is refused with ERROR 8, at once`, async () => {
    const { net, heard, tid, client } = await scripted();
    const got = track(client.get("f", asked));
    await net.deliver();
    const from = heard[0].port;
    tid.send(encodeOack(answered), from, "0.0.0.0");
    await net.deliver();
    assert.match(await outcome(net, got), expected);
    assert.equal(tid.take().map((m) => [decode(m.data).op, (decode(m.data) as { code: number }).code]), [[5, 8]], "the server was not told");
  });
}

test("the server's address in another spelling is the server: 0:0:0:0:0:0:0:1 answered from ::1", async () => {
  const net = new FakeNet();
  let from = 0;
  await net.bind("0:0:0:0:0:0:0:1", 69, (_d, _a, port) => (from = port));
  const tid = await fakePeer(net, "::1");
  const client = new TftpClient("0:0:0:0:0:0:0:1", 69, { runtime: net, timeoutMs: 1000, retries: 2 });
  const got = track(client.get("f"));
  await net.deliver();
  tid.send(encodeData(1, bytesOf(100, 4)), from, "::");
  assert.is(await outcome(net, got), "ok");
  assert.equal(tid.take().map((m) => decode(m.data).op), [4], "the transfer took its own server for a stranger");
});

test("a host name is refused at once, with what to do instead", () => {
  const net = new FakeNet();
  assert.throws(() => new TftpClient("localhost", 69, { runtime: net }), /TftpClient needs an IP address, not "localhost"/);
});

/** What the transfer port heard from the client, as "ACK n" / "ERROR n". */
function told(tid: Awaited<ReturnType<typeof scripted>>["tid"]): string[] {
  return tid.take().map((m) => decode(m.data) as Packet).map((p) => (p.op === 4 ? `ACK ${(p as { block: number }).block}` : p.op === 5 ? `ERROR ${(p as { code: number }).code}` : `op ${p.op}`));
}

/** A get asking tsize, answered tsize 1000, then DATA blocks of these sizes from the transfer port. */
async function afterTsize1000(...sizes: number[]) {
  const s = await scripted();
  const got = track(s.client.get("f", { tsize: true }));
  await s.net.deliver();
  const from = s.heard[0].port;
  s.tid.send(encodeOack({ tsize: "1000" }), from, "0.0.0.0");
  await s.net.deliver();
  s.tid.take(); // ACK 0
  sizes.forEach((n, i) => s.tid.send(encodeData(i + 1, bytesOf(n, i + 1)), from, "0.0.0.0"));
  return { ...s, got, from };
}

test("a download whose length differs from the tsize the server announced is an error, not a success", async () => {
  const { net, got } = await afterTsize1000(512, 100);
  assert.is(await outcome(net, got), "error 0: received 612 bytes where the server announced tsize 1000");
});

test("a server that sends past the tsize it announced is stopped there with ERROR 0, not followed without end", async () => {
  const { net, tid, got, from } = await afterTsize1000(512, 512); // 1,024 bytes: a full block, more to come
  assert.is(await outcome(net, got), "error 0: the server sent more than the 1000 bytes it announced");
  // DATA 2 was acknowledged as it arrived (the ACK leaves before the bytes are counted); then the ERROR.
  assert.equal(told(tid), ["ACK 1", "ACK 2", "ERROR 0"], "the server was not told");
  tid.send(encodeData(3, bytesOf(512, 3)), from, "0.0.0.0");
  await net.deliver();
  await net.advance(5000);
  assert.equal(told(tid), [], "the client went on after its ERROR");
});

test("maxSize: a file of exactly maxSize is received; one byte more is stopped there with ERROR 3", async () => {
  for (const [size, expected] of [[1024, "ok"], [1025, "error 3: the file is larger than 1024 bytes"]] as const) {
    const { net, heard, tid, client } = await scripted();
    let error: unknown;
    const get = client.get("f", { maxSize: 1024 });
    get.catch((e) => void (error = e));
    const got = track(get);
    await net.deliver();
    const from = heard[0].port;
    // No tsize: only the bytes themselves can tell. Blocks of 512: 512, 512, then the rest.
    for (let block = 1, sent = 0; sent <= size; block++, sent += 512) {
      tid.send(encodeData(block, bytesOf(Math.min(512, size - sent), block)), from, "0.0.0.0");
      await net.deliver();
    }
    assert.is(await outcome(net, got), expected, `${size} bytes`);
    if (size === 1024) {
      assert.equal((await get).data.length, 1024);
      continue;
    }
    assert.instance(error, TftpError);
    assert.equal(told(tid), ["ACK 1", "ACK 2", "ERROR 3"], "the server was not told, or was told late");
  }
});

test("maxSize: a block that would pass it gets ERROR 3 in place of its ACK and is not handed on", async () => {
  const { net, heard, tid, client } = await scripted();
  let taken = 0;
  const got = track(client.get("f", { maxSize: 1000, onData: (c) => void (taken += c.length) }));
  await net.deliver();
  const from = heard[0].port;
  for (const block of [1, 2, 3]) tid.send(encodeData(block, bytesOf(512, block)), from, "0.0.0.0");
  assert.is(await outcome(net, got), "error 3: the file is larger than 1000 bytes");
  assert.equal(told(tid), ["ACK 1", "ERROR 3"]);
  assert.is(taken, 512, "the block past maxSize reached onData");
});

test("maxSize: a tsize above it is answered with ERROR 3 in place of ACK 0, a tsize of exactly maxSize is taken; in memory, 1 GiB is the default", async () => {
  const exact = await scripted();
  const fits = track(exact.client.get("f", { tsize: true, maxSize: 1000 }));
  await exact.net.deliver();
  exact.tid.send(encodeOack({ tsize: "1000" }), exact.heard[0].port, "0.0.0.0");
  await exact.net.deliver();
  assert.equal(told(exact.tid), ["ACK 0"]);
  exact.tid.send(encodeData(1, bytesOf(512, 1)), exact.heard[0].port, "0.0.0.0");
  exact.tid.send(encodeData(2, bytesOf(488, 2)), exact.heard[0].port, "0.0.0.0");
  assert.is(await outcome(exact.net, fits), "ok");
  const { net, heard, tid, client } = await scripted();
  let error: unknown;
  const get = client.get("f", { tsize: true, maxSize: 999 });
  get.catch((e) => void (error = e));
  const got = track(get);
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeOack({ tsize: "1000" }), from, "0.0.0.0");
  await net.deliver();
  assert.is(await outcome(net, got), "error 3: the server announced 1000 bytes, more than maxSize (999)");
  assert.instance(error, TftpError);
  assert.equal(told(tid), ["ERROR 3"]);
  // The default, without sending a gigabyte: a tsize one byte above it is refused the same way.
  const second = await scripted();
  const big = track(second.client.get("f", { tsize: true }));
  await second.net.deliver();
  second.tid.send(encodeOack({ tsize: String(DEFAULT_MAX_GET + 1) }), second.heard[0].port, "0.0.0.0");
  assert.is(await outcome(second.net, big), "error 3: the server announced 1073741825 bytes, more than maxSize (1073741824)");
});

test("maxSize: with onData there is no default limit; a maxSize that is not a number is refused at once", async () => {
  const { net, heard, tid, client } = await scripted();
  let taken = 0;
  const got = track(client.get("f", { tsize: true, onData: (c) => void (taken += c.length) }));
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeOack({ tsize: String(DEFAULT_MAX_GET + 100) }), from, "0.0.0.0");
  await net.deliver();
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0");
  await net.deliver();
  await net.deliver();
  assert.is(got.result, "pending", "a streamed get was stopped by the in-memory default");
  assert.is(taken, 512);
  assert.equal(told(tid), ["ACK 0", "ACK 1"]);
  for (const bad of [NaN, -1, 1.5, "5" as unknown as number]) {
    await client.get("f", { maxSize: bad }).then(
      () => assert.unreachable(`maxSize ${bad} was taken`),
      (e) => assert.match(String(e), /maxSize must be a whole number of bytes, not (NaN|-1|1\.5|"5")$/),
    );
  }
});

test("a put whose body fails rejects with the body's own error as the cause", async () => {
  const { net, heard, tid, client } = await scripted();
  const broken = (async function* () {
    yield bytesOf(600, 1);
    throw new Error("my source broke");
  })();
  let error: unknown;
  const put = track(client.put("f", broken).catch((e) => void (error = e)));
  await net.deliver();
  const from = heard[0].port;
  tid.send(new Uint8Array([0, 4, 0, 0]), from, "0.0.0.0"); // ACK 0
  await outcome(net, put);
  assert.instance(error, TftpError);
  assert.is((error as TftpError).message, "error reading the file");
  assert.is(((error as Error).cause as Error)?.message, "my source broke");
});

// [what the server does, the outcome]: whatever it is, the put's body is closed (a netascii
// body holds an arena block; a file body an open file).
const putEnds: [string, "refuse" | "silent" | "done", RegExp][] = [
  ["refuses it", "refuse", /^error 2: no$/],
  ["never answers", "silent", /^error 0: no answer from the server$/],
  ["takes it", "done", /^ok$/],
];
for (const [what, server, expected] of putEnds) {
  for (const mode of ["octet", "netascii"] as const) {
    test(`a put whose server ${what} closes its body (${mode})`, async () => {
      const { net, heard, tid, client } = await scripted();
      let closed = 0;
      const body = { size: 3, fill: (t: { view(i: number): Uint8Array }) => (t.view(0).set([1, 2, 3]), 3), close: () => void closed++ };
      const put = track(client.put("f", body, { mode }));
      await net.deliver();
      if (server === "refuse") tid.send(encodeError(2, "no"), heard[0].port, "0.0.0.0");
      if (server === "done") {
        tid.send(encodeAck(0), heard[0].port, "0.0.0.0");
        await net.deliver();
        tid.send(encodeAck(1), heard[0].port, "0.0.0.0");
      }
      assert.match(await outcome(net, put), expected);
      await net.settle();
      assert.is(closed, 1, "the body was closed once");
    });
  }
}

test("onProgress on a get: the bytes received in order and the server's tsize, once per step", async () => {
  const { net, heard, tid, client } = await scripted();
  const seen: [number, number | undefined][] = [];
  const got = track(client.get("f", { tsize: true, onProgress: (bytes, total) => seen.push([bytes, total]) }));
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeOack({ tsize: "612" }), from, "0.0.0.0");
  await net.deliver();
  tid.take(); // ACK 0
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0");
  await net.deliver();
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0"); // a duplicate: no progress
  await net.deliver();
  tid.send(encodeData(2, bytesOf(100, 2)), from, "0.0.0.0");
  assert.is(await outcome(net, got), "ok");
  assert.equal(seen, [[0, 612], [512, 612], [612, 612]]);
});

test("onProgress on a put: the bytes the server acknowledged, and the body's size", async () => {
  const { net, heard, tid, client } = await scripted();
  const seen: [number, number | undefined][] = [];
  const put = track(client.put("f", bytesOf(700, 3), { onProgress: (bytes, total) => seen.push([bytes, total]) }));
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeAck(0), from, "0.0.0.0");
  await net.deliver();
  tid.take(); // DATA 1
  tid.send(encodeAck(1), from, "0.0.0.0");
  await net.deliver();
  tid.take(); // DATA 2
  tid.send(encodeAck(2), from, "0.0.0.0");
  assert.is(await outcome(net, put), "ok");
  assert.equal(seen, [[0, 700], [512, 700], [700, 700]]);
});

test("the server's ERROR rejects as a TftpServerError; a timeout on this side as a plain TftpError", async () => {
  const { net, heard, tid, client } = await scripted();
  let refused: unknown;
  const get = track(client.get("f").catch((e) => void (refused = e)));
  await net.deliver();
  tid.send(encodeError(1, "File not found"), heard[0].port, "0.0.0.0");
  await outcome(net, get);
  assert.instance(refused, TftpServerError);
  assert.equal([(refused as TftpServerError).code, (refused as TftpServerError).message], [1, "File not found"]);

  let midway: unknown;
  const second = track(client.get("g").catch((e) => void (midway = e)));
  await net.deliver();
  const from = heard[heard.length - 1].port;
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0");
  await net.deliver();
  tid.send(encodeError(3, "Disk full or allocation exceeded"), from, "0.0.0.0"); // during the transfer
  await outcome(net, second);
  assert.instance(midway, TftpServerError);
  assert.is((midway as Error).message, "Disk full or allocation exceeded");

  let silent: unknown;
  const third = track(client.get("h").catch((e) => void (silent = e)));
  await outcome(net, third);
  assert.instance(silent, TftpError);
  assert.not.instance(silent, TftpServerError);
  assert.is((silent as Error).message, "no answer from the server");
});

test("onData on a get: the file's bytes in order, as they arrive; the result's data is then empty", async () => {
  const { net, heard, tid, client } = await scripted();
  const chunks: Uint8Array[] = [];
  let result: { data: Uint8Array } | undefined;
  const got = track(client.get("f", { tsize: true, onData: (c) => chunks.push(c) }).then((r) => void (result = r)));
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeOack({ tsize: "612" }), from, "0.0.0.0");
  await net.deliver();
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0");
  await net.deliver();
  assert.is(chunks.length, 1, "the first block is handed on before the transfer ends");
  tid.send(encodeData(2, bytesOf(100, 2)), from, "0.0.0.0");
  assert.is(await outcome(net, got), "ok");
  assert.equal(chunks.map((c) => [...c]), [[...bytesOf(512, 1)], [...bytesOf(100, 2)]]);
  assert.is(result!.data.length, 0);
});

test("an onData that throws ends the get with ERROR 3 to the server and rejects with its error as the cause", async () => {
  const { net, heard, tid, client } = await scripted();
  let error: unknown;
  const got = track(client.get("f", { onData: () => { throw new Error("ENOSPC: no space left on device"); } }).catch((e) => void (error = e)));
  await net.deliver();
  const from = heard[0].port;
  tid.send(encodeData(1, bytesOf(512, 1)), from, "0.0.0.0");
  await outcome(net, got);
  assert.instance(error, TftpError);
  assert.not.instance(error, TftpServerError);
  assert.is((error as Error).message, "cannot store the file");
  assert.is(((error as Error).cause as Error)?.message, "ENOSPC: no space left on device");
  const sent = tid.take().map((m) => decode(m.data));
  assert.ok(sent.some((p) => p.op === 5 && (p as { code: number }).code === 3), `the server was told: ${JSON.stringify(sent.map((p) => p.op))}`);
});

test.run();
