// The CLI's watch over the engine's memory after a burst of new transfers
// (cli/burst_memory.ts): when a full collection is due, and that on Deno the collection
// the process can ask for exists and gives a grown young generation back (Node keeps it
// small by a flag; Bun's collection is Bun.gc, a documented call).
import { test } from "uvu";
import * as assert from "uvu/assert";
import v8 from "node:v8";
import { BurstWatch, GROWN, QUIET_CPU, v8Collection } from "../cli/burst_memory.ts";
import { runtimeName } from "../adapters/runtime.ts";

const MiB = 1024 * 1024;

const IDLE = 1_500; // µs of CPU in a second, as the server idles
const BUSY = 300_000; // as 1,000 requests a second arrive

/** Feeds `watch` one sample a second; the seconds at which it asked for a collection (after which the heap is `after`). */
function run(watch: BurstWatch, seconds: [heapMiB: number, cpu: number][], after: number[] = []): number[] {
  const asked: number[] = [];
  seconds.forEach(([heap, cpu], i) => {
    if (!watch.tick(heap * MiB, cpu)) return;
    asked.push(i);
    watch.collected((after.shift() ?? heap) * MiB);
  });
  return asked;
}

test("a heap grown by a burst is collected after two quiet seconds, once", () => {
  const watch = new BurstWatch(10 * MiB);
  const asked = run(watch, [[20, BUSY], [30, BUSY], [40, BUSY], [40, IDLE], [40, IDLE], [25, IDLE], [25, IDLE], [25, IDLE], [25, IDLE]], [25]);
  assert.equal(asked, [4]);
});

test("no collection while busy, after one quiet second, or when the heap grew by no more than 8 MiB", () => {
  assert.equal(run(new BurstWatch(10 * MiB), [[40, BUSY], [40, QUIET_CPU], [40, BUSY], [40, IDLE], [40, BUSY], [40, 33_000]]), []);
  assert.equal(run(new BurstWatch(10 * MiB), [[10 + GROWN / MiB, 0], [10 + GROWN / MiB, 0], [12, 0], [12, 0]]), []);
});

test("a collection the burst goes on after does not count: the rest is collected once the burst is over", () => {
  // Two seconds without a turn on a busy machine in the middle of the burst, then the rest of it.
  const watch = new BurstWatch(10 * MiB);
  // The rest grows the heap by less than 8 MiB over what the first collection left (28 MiB).
  const asked = run(watch, [[30, BUSY], [30, IDLE], [30, IDLE], [33, BUSY], [34, BUSY], [34, IDLE], [34, IDLE], [30, IDLE], [30, IDLE], [30, IDLE]], [28, 30]);
  assert.equal(asked, [2, 6]);
});

/** V8's young generation: its size, in bytes. */
const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;

test("on Deno, a full collection can be had after start, shrinks a grown young generation and keeps what lives", async () => {
  if (runtimeName() !== "deno") return;
  const collect = await v8Collection(v8);
  assert.ok(collect, "no gc through node:vm after --expose-gc");
  // Objects that survive, as a burst of new transfers does, until V8 has grown the young generation.
  const kept: { n: number; name: string; times: number[] }[] = [];
  while (young() <= GROWN && kept.length < 2_000_000) kept.push({ n: kept.length, name: `file${kept.length}`, times: [kept.length] });
  const grown = young();
  assert.ok(grown > GROWN, `the young generation did not grow past ${GROWN / MiB} MiB: ${grown / MiB} MiB`);
  collect!();
  const after = young();
  assert.ok(after <= GROWN, `still ${after / MiB} MiB after the collection (${grown / MiB} before)`);
  assert.is(kept[kept.length - 1].name, `file${kept.length - 1}`);
});

test.run();
