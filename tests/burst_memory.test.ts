// The CLI's watch over the engine's memory after a burst of new transfers
// (cli/burst_memory.ts): when a full collection is due, and that on V8 the collection
// the process can ask for exists and, on Deno, gives a grown young generation back
// (Node keeps it small by a flag; Bun's collection is Bun.gc, a documented call).
import { test } from "uvu";
import * as assert from "uvu/assert";
import v8 from "node:v8";
import { burstIsOver, GROWN, QUIET_CPU, v8Collection } from "../cli/burst_memory.ts";
import { runtimeName } from "../adapters/runtime.ts";

const MiB = 1024 * 1024;

test("a heap grown by a burst is collected when the process is quiet, not while it is busy", () => {
  const base = 10 * MiB;
  assert.ok(burstIsOver(base, 40 * MiB, 1_500)); // 1.5 ms of CPU in the second, as idle
  // busy: a burst still arriving
  assert.not.ok(burstIsOver(base, 40 * MiB, QUIET_CPU));
  assert.not.ok(burstIsOver(base, 40 * MiB, 33_000)); // 1,000 requests a second, in a dip
  // grown by no more than GROWN since the last collection
  assert.not.ok(burstIsOver(base, base + GROWN, 0));
  assert.not.ok(burstIsOver(base, base - MiB, 0));
});

/** V8's young generation: its size, in bytes. */
const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;

test("on V8, a full collection can be had after start; on Deno it shrinks a grown young generation and keeps what lives", async () => {
  if (runtimeName() === "bun") return;
  const collect = await v8Collection(v8);
  assert.ok(collect, "no gc through node:vm after --expose-gc");
  if (runtimeName() !== "deno") return collect!();
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
