/**
 * The next wake-up of many machines, each with a `wakeAt` that moves. A binary
 * min-heap of (time, item) entries that are never updated in place: an item
 * whose wakeAt moves earlier gets a new entry, one that moves later keeps its
 * old one, which pops early and is put back at the item's current time. Most
 * moves are later (every ACK pushes a deadline out), so most cost nothing.
 */
export interface Timed {
  /** When the item next wants handling; Infinity for never. */
  readonly wakeAt: number;
  /** The earliest entry of the item in the heap (Infinity for none): kept by TimerHeap. */
  scheduledAt: number;
}

export class TimerHeap<T extends Timed> {
  #at: number[] = [];
  #items: T[] = [];

  get size(): number {
    return this.#at.length;
  }

  /** The earliest entry's time (possibly of an item that moved later since), or Infinity. */
  get next(): number {
    return this.#at.length > 0 ? this.#at[0] : Infinity;
  }

  /** Notes the item's current wakeAt: an entry is added only if it is earlier than the item's earliest. */
  schedule(item: T): void {
    const at = item.wakeAt;
    if (at >= item.scheduledAt) return;
    item.scheduledAt = at;
    this.#push(at, item);
  }

  /**
   * Takes the items due at `now`, in time order, each once. Entries of items
   * that moved later are put back at their current time on the way.
   */
  due(now: number): T[] {
    const out: T[] = [];
    while (this.#at.length > 0 && this.#at[0] <= now) {
      const at = this.#at[0];
      const item = this.#pop();
      if (at !== item.scheduledAt) continue; // an older, later entry of an item rescheduled earlier
      item.scheduledAt = Infinity;
      if (item.wakeAt <= now) out.push(item);
      else this.schedule(item);
    }
    return out;
  }

  /**
   * Drops the entries nobody needs: those of items that want no wake-up any more
   * (a request answered long before its deadline) and older copies of items
   * rescheduled earlier. The owner calls it when the heap has grown well past its
   * live items, so that an item that is over is not kept alive by its old entry.
   */
  prune(): void {
    const at = this.#at;
    const items = this.#items;
    const keptAt: number[] = [];
    const keptItems: T[] = [];
    for (let i = 0; i < at.length; i++) {
      const item = items[i];
      if (at[i] !== item.scheduledAt) continue;
      if (item.wakeAt === Infinity) {
        item.scheduledAt = Infinity;
        continue;
      }
      keptAt.push(at[i]);
      keptItems.push(item);
    }
    this.#at = keptAt;
    this.#items = keptItems;
    // Made a heap in place, bottom up: linear in the entries kept.
    for (let i = (keptAt.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** Moves entry i down until neither child is earlier. */
  #siftDown(i: number): void {
    const a = this.#at;
    const items = this.#items;
    const n = a.length;
    const at = a[i];
    const item = items[i];
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && a[child + 1] < a[child]) child++;
      if (a[child] >= at) break;
      a[i] = a[child];
      items[i] = items[child];
      i = child;
    }
    a[i] = at;
    items[i] = item;
  }

  #push(at: number, item: T): void {
    const a = this.#at;
    const items = this.#items;
    let i = a.length;
    a.push(at);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= at) break;
      a[i] = a[parent];
      items[i] = items[parent];
      i = parent;
    }
    a[i] = at;
    items[i] = item;
  }

  #pop(): T {
    const a = this.#at;
    const items = this.#items;
    const top = items[0];
    const lastAt = a.pop()!;
    const lastItem = items.pop()!;
    if (a.length > 0) {
      // The last entry takes the root's place and sinks to where it belongs.
      a[0] = lastAt;
      items[0] = lastItem;
      this.#siftDown(0);
    }
    return top;
  }
}
