// The timer heap (core/timer_heap.ts): items come due in time order, each once,
// and prune() drops the entries of items that want no wake-up any more, so that
// such an item is no longer held by the heap.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type Timed, TimerHeap } from "../core/timer_heap.ts";

class Item implements Timed {
  scheduledAt = Infinity;
  constructor(public name: string, public wakeAt: number) {}
}

test("items come due in time order; one that moved later waits for its new time", () => {
  const heap = new TimerHeap<Item>();
  const a = new Item("a", 30), b = new Item("b", 10), c = new Item("c", 20);
  [a, b, c].forEach((i) => heap.schedule(i));
  c.wakeAt = 50; // later: its old entry pops at 20 and goes back at 50
  assert.equal(heap.due(25).map((i) => i.name), ["b"]);
  assert.equal(heap.due(40).map((i) => i.name), ["a"]);
  assert.equal(heap.due(60).map((i) => i.name), ["c"]);
  assert.is(heap.size, 0);
});

test("prune drops the entries of items done with, and of items rescheduled earlier; the rest still come due", () => {
  const heap = new TimerHeap<Item>();
  const items = Array.from({ length: 100 }, (_, i) => new Item(`i${i}`, 1000 + i));
  items.forEach((i) => heap.schedule(i));
  // Half are over (a request answered before its deadline); some move earlier (a second entry each).
  items.forEach((item, i) => {
    if (i % 2 === 0) item.wakeAt = Infinity;
    else if (i % 5 === 1) {
      item.wakeAt = 500 + i;
      heap.schedule(item);
    }
  });
  assert.is(heap.size, 110);
  heap.prune();
  assert.is(heap.size, 50, "one entry per item that still wants waking");
  assert.ok(items.filter((_, i) => i % 2 === 0).every((i) => i.scheduledAt === Infinity), "a dropped item can be scheduled again");
  const due = heap.due(2000).map((i) => i.name);
  const want = items.filter((_, i) => i % 2 === 1).sort((x, y) => x.wakeAt - y.wakeAt).map((i) => i.name);
  assert.equal(due, want);
  // A pruned item that wants waking again gets a fresh entry.
  items[0].wakeAt = 3000;
  heap.schedule(items[0]);
  assert.equal(heap.due(3000).map((i) => i.name), ["i0"]);
});

test("after prune, a thousand items at scattered times still come due in time order", () => {
  const heap = new TimerHeap<Item>();
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const items = Array.from({ length: 1000 }, (_, i) => new Item(`i${i}`, Math.floor(rand() * 10_000)));
  items.forEach((i) => heap.schedule(i));
  for (const item of items) if (rand() < 0.4) item.wakeAt = Infinity;
  heap.prune();
  const live = items.filter((i) => i.wakeAt !== Infinity);
  assert.is(heap.size, live.length);
  const due = heap.due(10_000).map((i) => i.wakeAt);
  assert.equal(due, live.map((i) => i.wakeAt).sort((a, b) => a - b));
});

test.run();
