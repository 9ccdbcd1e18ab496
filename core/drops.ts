/**
 * Requests dropped unanswered (the server full, an address over its rate) are
 * told to the operator without flooding the log: the first at once, then at most
 * one event a second with the count since the last (TransferEvent.dropped).
 */
import type { TransferEvent } from "./events.ts";
import type { Timed } from "./timer_heap.ts";

export class DropCounter implements Timed {
  wakeAt = Infinity;
  scheduledAt = Infinity;
  #everyMs: number;
  #count = 0;
  #last: TransferEvent | null = null;

  constructor(everyMs: number) {
    this.#everyMs = everyMs;
  }

  /** A drop: returns the event to report now (the first of a quiet spell), or null (counted for later). */
  add(event: TransferEvent, now: number): TransferEvent | null {
    if (this.#last !== null) {
      this.#count++;
      this.#last = event;
      return null;
    }
    this.#last = event;
    this.#count = 0;
    this.wakeAt = now + this.#everyMs;
    return { ...event, dropped: 1 };
  }

  /** Its time came: the count since the last report, or null (and quiet again) when there was none. */
  due(now: number): TransferEvent | null {
    if (this.#last === null || this.#count === 0) {
      this.#last = null;
      this.wakeAt = Infinity;
      return null;
    }
    const event = { ...this.#last, dropped: this.#count };
    this.#count = 0;
    this.wakeAt = now + this.#everyMs;
    return event;
  }

  /** Closing: what is counted and not yet told, now. */
  flush(): TransferEvent | null {
    const event = this.#last !== null && this.#count > 0 ? { ...this.#last, dropped: this.#count } : null;
    this.#last = null;
    this.#count = 0;
    this.wakeAt = Infinity;
    return event;
  }
}
