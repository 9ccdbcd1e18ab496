// Downloads when the arena (the linear memory rings live in) is used up: after an
// OACK a transfer holds one ring slot until the client's ACK 0, and only then asks
// for its full ring. Its own file: the arena is exhausted for real (3 GiB of
// address space, not touched), which the other tests should not share.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decode, encodeAck, encodeRequest } from "../core/codec.ts";
import { allocate, arenaInUse, release } from "../core/arena.ts";
import type { DataPacket, Packet } from "../core/packet.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";

/** Takes every region the arena has but one of each size (bytes) in `spare`; returns the undo. */
function exhaust(spare: number[]): () => void {
  const kept = spare.map((bytes) => allocate(bytes)); // set aside first, given back once all else is taken
  assert.not.ok(kept.includes(0), "no room for the spare regions");
  const held: number[] = [];
  // The power-of-two regions, then the small ones (slabs, and what is left of the last).
  const sizes = [...Array.from({ length: 20 }, (_, i) => 2 ** (31 - i)), 2048, 1024, 512, 256, 128, 64];
  for (const size of sizes) for (let ptr = allocate(size); ptr !== 0; ptr = allocate(size)) held.push(ptr);
  assert.is(allocate(1), 0, "the arena is not exhausted");
  kept.forEach(release);
  return () => held.forEach(release);
}

async function download(spare: number[]) {
  const body = bytesOf(512 * 40, 9);
  const { net, app } = await fakeServer((app) => app.read("f", () => body));
  const before = arenaInUse();
  const undo = exhaust(spare);
  try {
    const client = await fakePeer(net, "127.0.0.2");
    client.send(encodeRequest(1, "f", "octet", { windowsize: "16" }), 69);
    await net.deliver();
    const [oack] = client.take();
    assert.is(decode(oack.data).op, 6);
    client.send(encodeAck(0), oack.port);
    await net.deliver();
    return { app, body, answer: client.take().map((m) => decode(m.data) as Packet) };
  } finally {
    undo();
    assert.ok(arenaInUse() >= before);
  }
}

test("no memory for the full ring on ACK 0: a ring of one window will do, and the whole window goes out", async () => {
  // The one-slot ring held since the OACK (516 bytes); 2^14 hold a window of 16 blocks of 512
  // (16 x 516), not the full ring (254 slots).
  const { body, answer } = await download([516, 2 ** 14]);
  const data = answer as DataPacket[];
  assert.equal(data.map((d) => d.block), Array.from({ length: 16 }, (_, i) => i + 1), "a window of one block per client timeout");
  data.forEach((d, i) => assert.equal(d.payload, body.subarray(i * 512, (i + 1) * 512)));
});

test("no slab left for a small ring: it is cut from a free power-of-two region", async () => {
  // No 516-byte region and no room for a slab: the one-slot ring splits the 4 KiB region.
  const { body, answer } = await download([4096, 2 ** 14]);
  const data = answer as DataPacket[];
  assert.equal(data.map((d) => d.block), Array.from({ length: 16 }, (_, i) => i + 1));
  data.forEach((d, i) => assert.equal(d.payload, body.subarray(i * 512, (i + 1) * 512)));
});

test("no memory even for a window on ACK 0: ERROR 3, as for a request that finds none", async () => {
  // The one-slot ring held since the OACK, and nothing that holds a window.
  const { app, answer } = await download([516]);
  assert.equal(answer.map((p) => [p.op, (p as { code: number }).code, (p as { message: string }).message]), [[5, 3, "server out of memory"]]);
  assert.is(app.engine!.load, 0);
});

test.run();
