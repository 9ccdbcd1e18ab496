/**
 * Registers a boot test that needs firmware, QEMU or root: on a developer's
 * machine without them it is skipped with a message saying what is missing;
 * in CI (CI=true) it fails, since CI installs them (.ci/install-boot.sh).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ensureCli } from "./emmer.ts";
import { missing, type Need } from "./firmware.ts";

const CI = process.env.CI === "true";

export function bootTest(name: string, needs: readonly Need[], fn: () => Promise<void>): void {
  const lacking = missing(needs);
  if (lacking.length === 0) {
    test(name, async () => {
      ensureCli();
      await fn();
    });
  } else if (CI) {
    test(name, () => assert.unreachable(`missing ${lacking.join(", ")}: CI must install it (.ci/install-boot.sh)`));
  } else {
    console.log(`# skipping "${name}": missing ${lacking.join(", ")} (.ci/install-boot.sh installs them)`);
    test.skip(name);
  }
}
