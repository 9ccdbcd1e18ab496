/**
 * New requests per client address: a token bucket per address, with time as
 * an input. The table is bounded: when it grows past `maxAddresses`, addresses
 * whose bucket has refilled (idle ones) are forgotten first, then the oldest.
 */
export class RateLimiter {
  readonly perSecond: number;
  readonly maxAddresses: number;
  #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number, maxAddresses = 65536) {
    this.perSecond = perSecond;
    this.maxAddresses = maxAddresses;
  }

  /** Takes one token for `address` at time `now` (ms); false when its bucket is empty. */
  take(address: string, now: number): boolean {
    let b = this.#buckets.get(address);
    if (b === undefined) {
      if (this.#buckets.size >= this.maxAddresses) this.#prune(now);
      b = { tokens: this.perSecond, at: now };
      this.#buckets.set(address, b);
    } else {
      b.tokens = Math.min(this.perSecond, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.#buckets.size;
  }

  #prune(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.perSecond) this.#buckets.delete(k);
    }
    // Still full (every address busy): forget the oldest half; Map keeps insertion order.
    if (this.#buckets.size >= this.maxAddresses) {
      let drop = this.#buckets.size / 2;
      for (const k of this.#buckets.keys()) {
        if (drop-- <= 0) break;
        this.#buckets.delete(k);
      }
    }
  }
}
