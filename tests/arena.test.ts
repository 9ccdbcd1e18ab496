// The arena (core/arena.ts) when it is full: memory once used by big rings
// must go on serving small ones after they are released.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { allocate, arenaInUse, release } from "../core/arena.ts";

test("after big regions fill the arena and are released, small ones are served from them", () => {
  const big: number[] = [];
  for (let p = allocate(8 << 20); p !== 0; p = allocate(8 << 20)) big.push(p);
  assert.ok(big.length >= 300, `only ${big.length} regions of 8 MiB`);
  assert.is(allocate(8 << 20), 0, "allocated past the limit");
  for (const p of big) release(p);
  assert.is(arenaInUse(), 0);
  const small: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const p = allocate(70_000);
    assert.ok(p !== 0, `small region ${i} refused after the big ones were released`);
    small.push(p);
  }
  assert.is(new Set(small).size, small.length, "a region handed out twice");
  for (const p of small) release(p);
  assert.is(arenaInUse(), 0);
});

test("release of an unknown or already released region changes nothing", () => {
  const base = arenaInUse();
  const p = allocate(1000);
  release(p);
  release(p);
  release(12345);
  assert.is(arenaInUse(), base);
  const q = allocate(1000);
  const r = allocate(1000);
  assert.is.not(q, r);
  release(q);
  release(r);
});

test("a small region takes its size rounded up to 64 bytes, cut from a shared slab, and is reused once released", () => {
  const base = arenaInUse();
  // A download's ring while its client stalls: one slot of a 512-byte block and its header.
  const rings = Array.from({ length: 20 }, () => allocate(516));
  assert.is(arenaInUse() - base, 20 * 576);
  assert.not.ok(rings.includes(0));
  const sorted = [...rings].sort((a, b) => a - b);
  // Side by side: most of them follow each other 576 bytes apart (a slab may end among them).
  const adjacent = sorted.slice(1).filter((p, i) => p - sorted[i] === 576).length;
  assert.ok(adjacent >= 18, `only ${adjacent} of 19 gaps are 576 bytes`);
  const freed = rings.pop()!;
  release(freed);
  assert.is(allocate(520), freed, "a released region of the same rounded size is handed out again");
  rings.push(freed);
  for (const p of rings) release(p);
  assert.is(arenaInUse(), base);
});

test.run();
