// The CLI's watch over V8's young generation on Deno (cli/young_generation.ts): when a
// collection is due, and that the collection the process can ask for really gives the
// grown young generation back (Deno only: Node keeps it small by a flag, Bun has no V8).
import { test } from "uvu";
import * as assert from "uvu/assert";
import v8 from "node:v8";
import { burstIsOver, fullCollection, GROWN, QUIET, youngGeneration } from "../cli/young_generation.ts";
import { runtimeName } from "../adapters/runtime.ts";

const MiB = 1024 * 1024;

test("a grown young generation is collected after a quiet second, not during a burst", () => {
  const grown = 50 * MiB;
  // quiet: no scavenge (use did not fall), a few KiB allocated
  assert.ok(burstIsOver({ capacity: grown, used: 16 * MiB }, { capacity: grown, used: 16 * MiB + 4096 }));
  assert.ok(burstIsOver({ capacity: grown, used: 3 * MiB }, { capacity: grown, used: 3 * MiB }));
  // a scavenge in between: still allocating
  assert.not.ok(burstIsOver({ capacity: grown, used: 16 * MiB }, { capacity: grown, used: 2 * MiB }));
  // a megabyte or more allocated in the second
  assert.not.ok(burstIsOver({ capacity: grown, used: 2 * MiB }, { capacity: grown, used: 2 * MiB + QUIET }));
  // not grown: left to V8
  assert.not.ok(burstIsOver({ capacity: GROWN, used: MiB }, { capacity: GROWN, used: MiB }));
  assert.not.ok(burstIsOver({ capacity: 2.5 * MiB, used: MiB }, { capacity: 2.5 * MiB, used: MiB }));
});

test("on Deno, the collection the process can ask for shrinks a grown young generation and keeps what lives", async () => {
  if (runtimeName() !== "deno") return;
  const collect = await fullCollection(v8);
  assert.ok(collect, "no gc through node:vm after --expose-gc");
  // Objects that survive, as a burst of new transfers does, until V8 has grown the young generation.
  const kept: { n: number; name: string; times: number[] }[] = [];
  while (youngGeneration(v8).capacity <= GROWN && kept.length < 2_000_000) kept.push({ n: kept.length, name: `file${kept.length}`, times: [kept.length] });
  const grown = youngGeneration(v8).capacity;
  assert.ok(grown > GROWN, `the young generation did not grow past ${GROWN / MiB} MiB: ${grown / MiB} MiB`);
  collect!();
  const after = youngGeneration(v8).capacity;
  assert.ok(after <= GROWN, `still ${after / MiB} MiB after the collection (${grown / MiB} before)`);
  assert.is(kept.length > 0 && kept[kept.length - 1].name, `file${kept.length - 1}`);
});

test.run();
