/** Assertions on a boot run shared by the boot tests: the guest's verdict and the server's log lines. */
import * as assert from "uvu/assert";
import { type LogLine, transfers } from "./emmer.ts";
import type { BootRun } from "./scenarios.ts";

const tail = (s: string, n = 4000) => (s.length > n ? `...${s.slice(-n)}` : s);

/** The guest booted and its checksums match; otherwise fails with the console's and the log's tails. */
export function assertBooted(run: BootRun): void {
  assert.equal(run.problems, [], `${run.client}: ${run.problems.join("; ")}\n--- console ---\n${tail(run.console)}\n--- server log ---\n${tail(run.log)}`);
}

/** "7.9 MiB", "488.0 KiB", "156 B" as a byte count (to the rounding emmer-node's log uses). */
function approxBytes(text: string): { bytes: number; unit: number } {
  const m = /^([\d.]+) (B|KiB|MiB)$/.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2 }[m[2] as "B" | "KiB" | "MiB"];
  return { bytes: Number(m[1]) * unit, unit };
}

/**
 * The log's transfers of `name`, in order; asserts that the last one succeeded with the whole file
 * (the logged size matches, and the tsize the server announced, if any, is the file's size).
 */
export function assertServed(run: BootRun, name: string): LogLine[] {
  const lines = transfers(run.log).filter((t) => t.filename.replace(/^\//, "") === name);
  const size = run.files[name];
  assert.ok(lines.length > 0, `no transfer of ${name} in the server log:\n${run.log}`);
  const last = lines[lines.length - 1];
  assert.is(last.outcome, "ok", `the last transfer of ${name} did not succeed: ${last.line}`);
  const logged = approxBytes(last.bytes);
  assert.ok(Math.abs(logged.bytes - size) <= 0.05 * logged.unit, `${name}: the log says ${last.bytes}, the file has ${size} bytes`);
  for (const t of lines) {
    if (t.oack?.tsize !== undefined) assert.is(t.oack.tsize, String(size), `${name}: announced tsize ${t.oack.tsize}, the file has ${size} bytes`);
  }
  return lines;
}
