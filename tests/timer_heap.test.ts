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

test.run();
