// The staging buffers Deno's file reads borrow: sized up to powers of two,
// reused once given back, and never more kept than the bound.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { borrow, giveBack, KEPT_BYTES, KEPT_PER_SIZE, keptForReuse, lentOut } from "../adapters/staging_pool.ts";

test("a borrowed buffer holds the bytes asked for, in a power-of-two size of at least 4 KiB", () => {
  for (const [ask, size] of [[1, 4096], [516, 4096], [4097, 8192], [65464, 65536], [65537, 131072], [1_048_576, 1_048_576]]) {
    const b = borrow(ask);
    assert.is(b.length, size, `borrow(${ask})`);
    giveBack(b);
  }
  assert.is(lentOut(), 0);
});

test("a buffer given back is lent again; two at once are distinct", () => {
  const a = borrow(10_000);
  const b = borrow(10_000);
  assert.is.not(a, b);
  assert.is(lentOut(), 2);
  giveBack(a);
  assert.is(borrow(9_000), a, "the free buffer of that size is reused");
  giveBack(a);
  giveBack(b);
  assert.is(lentOut(), 0);
});

test("no more than KEPT_PER_SIZE buffers of one size are kept", () => {
  const many = Array.from({ length: KEPT_PER_SIZE + 5 }, () => borrow(300_000));
  for (const b of many) giveBack(b);
  const again = Array.from({ length: KEPT_PER_SIZE + 5 }, () => borrow(300_000));
  const reused = again.filter((b) => many.includes(b)).length;
  assert.is(reused, KEPT_PER_SIZE);
  for (const b of again) giveBack(b);
});

test("no more than KEPT_BYTES are kept in all, whatever the sizes", () => {
  const big = Array.from({ length: 6 }, () => borrow(4 * 1024 * 1024)); // whole rings of large windows
  for (const b of big) giveBack(b);
  assert.ok(keptForReuse() <= KEPT_BYTES, `${keptForReuse()} bytes kept`);
  // Kept up to the bound (within one buffer of it), whatever the tests above left in the pool.
  assert.ok(keptForReuse() > KEPT_BYTES - 4 * 1024 * 1024, `only ${keptForReuse()} bytes kept`);
  assert.is(lentOut(), 0);
});

test.run();
