// The stream a write handler reads: payloads gathered into chunks, copied
// (the adapter reuses its buffer), the tail delivered at the end, nothing
// after a discard or a failure, and the ACK held while the reader is behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { UploadStream } from "../core/body.ts";
import { bytesOf, concat } from "./support/session_driver.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

test("payloads arrive whole and in order, 16 blocks to a chunk, the rest at the end", async () => {
  const up = new UploadStream();
  const body = bytesOf(512 * 40 + 100);
  const buffer = new Uint8Array(512); // one buffer reused for every datagram, as the adapters do
  for (let at = 0; at < body.length; at += 512) {
    const payload = buffer.subarray(0, Math.min(512, body.length - at));
    payload.set(body.subarray(at, at + payload.length));
    up.push(payload);
    buffer.fill(0xee); // the adapter's next datagram overwrites it
  }
  up.end();
  const chunks = await readAll(up.stream);
  assert.equal(chunks.map((c) => c.length), [8192, 8192, 4196]);
  assert.equal(concat(chunks), body);
});

test("large blocks: as many as fit in 64 KiB to a chunk, one alone above 32 KiB, no buffer much larger than its bytes", async () => {
  for (const blksize of [8192, 40_000, 65464]) {
    const up = new UploadStream();
    const body = bytesOf(blksize * 9 + 7, blksize);
    up.push(new Uint8Array(0)); // adds nothing
    for (let at = 0; at < body.length; at += blksize) up.push(body.subarray(at, at + blksize));
    up.end();
    const chunks = await readAll(up.stream);
    assert.equal(concat(chunks), body, `blksize ${blksize}`);
    const perChunk = Math.min(16, Math.floor(65536 / blksize));
    assert.is(chunks[0].length, perChunk * blksize, `blksize ${blksize}: first chunk`);
    for (const c of chunks) assert.ok(c.buffer.byteLength <= Math.max(2 * c.length, 65536), `blksize ${blksize}: a ${c.length}-byte chunk holds ${c.buffer.byteLength} bytes`);
  }
});

test("a short upload's chunk is no larger than its bytes need", async () => {
  const up = new UploadStream();
  up.push(bytesOf(10));
  up.end();
  const [chunk] = await readAll(up.stream);
  assert.is(chunk.length, 10);
  assert.ok(chunk.buffer.byteLength < 100, `a 10-byte upload holds ${chunk.buffer.byteLength} bytes`);
});

test("after a discard, pushes are ignored and never hold the ACK; a failure reaches the reader", async () => {
  const up = new UploadStream(1000);
  up.push(bytesOf(100_000)); // queued on its own; the queue is now past its high-water mark
  up.discard();
  assert.is(up.push(bytesOf(100)), true, "a discarded upload held the ACK");
  const reader = up.stream.getReader();
  assert.is((await reader.read()).value!.length, 100_000);
  // Anything queued would be read within microtasks, before a macrotask runs.
  const next = await Promise.race([reader.read().then(() => "a chunk"), new Promise((r) => setTimeout(() => r("nothing"), 0))]);
  assert.is(next, "nothing");
  const failed = new UploadStream();
  failed.push(bytesOf(100));
  failed.fail(new Error("upload failed: timed out"));
  try {
    await readAll(failed.stream);
    assert.unreachable("the failure did not reach the reader");
  } catch (e) {
    assert.match((e as Error).message, "timed out");
  }
});

test("a failure after the end aborts the signal but leaves what was read intact", async () => {
  const up = new UploadStream();
  up.push(bytesOf(1000));
  up.end();
  const chunks = await readAll(up.stream);
  assert.is(up.signal.aborted, false);
  up.fail(new Error("handler timed out"));
  assert.is(up.signal.aborted, true);
  assert.is((up.signal.reason as Error).message, "handler timed out");
  assert.equal(concat(chunks), bytesOf(1000));
});

test("push answers false once a reader that does not read is a high-water mark behind", () => {
  const up = new UploadStream(64 * 1024);
  const answers: boolean[] = [];
  for (let i = 0; i < 200; i++) answers.push(up.push(bytesOf(512)));
  const first = answers.indexOf(false);
  // 128 blocks fill 64 KiB of queued chunks; the 16 being gathered are not counted yet.
  assert.is(first, 127);
  assert.ok(answers.slice(first).every((a) => !a), "it said yes again without a read");
});

test("a read after the ACK was held calls onDrain, which lets the session resume", async () => {
  const up = new UploadStream(64 * 1024);
  let drains = 0;
  up.onDrain(() => drains++);
  while (up.push(bytesOf(512))) { /* fill to the high-water mark */ }
  const before = drains;
  const reader = up.stream.getReader();
  await reader.read();
  await reader.read();
  assert.ok(drains > before, "reading did not call onDrain");
  assert.ok(up.wantsMore, "still behind after reading");
});

test.run();
