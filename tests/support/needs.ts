/**
 * Registers a test that needs something this machine may lack (a peer client, a
 * tool, root). An early `return` inside a test would count it as passed without
 * asserting anything; instead, when something is missing, the test is registered
 * as skipped (tests/run.mjs counts uvu's "Skipped" apart from "Passed"), and in CI
 * (CI=true), which installs everything, as a failure saying what is missing.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";

/** What a test needs, as `{ "what it is": present }`, e.g. `{ curl: hasPeer("curl") }`. */
export type Needs = Record<string, boolean>;

/** The missing items of `needs`, in order. */
export function lacking(needs: Needs): string[] {
  return Object.entries(needs).filter(([, present]) => !present).map(([what]) => what);
}

export function testNeeding(name: string, needs: Needs, fn: () => void | Promise<void>): void {
  const missing = lacking(needs);
  if (missing.length === 0) test(name, fn);
  else if (process.env.CI === "true") test(name, () => assert.unreachable(`missing ${missing.join(", ")}: CI must provide it`));
  else {
    console.log(`# skipping "${name}": missing ${missing.join(", ")}`);
    test.skip(name);
  }
}
