// iPXE's ROM under SeaBIOS (QEMU, software emulation) boots Linux from
// emmer-node: a script, a kernel and an initrd over TFTP, then /init proves
// the initrd's payload arrived intact and the kernel got the script's line.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bootTest } from "./support/gate.ts";
import { assertBooted, assertServed } from "./support/checks.ts";
import { bootIpxe } from "./support/scenarios.ts";
import { transfers } from "./support/emmer.ts";

// And in single-port mode, where every answer comes from port 69 itself: what RFC 1350 leaves to the
// server (its TID) must be taken by the firmware as it comes.
for (const server of ["emmer-node", "emmer-node --single-port"] as const) {
  bootTest(
    `iPXE ROM (SeaBIOS, e1000) fetches a script, a kernel and an initrd from ${server} and boots Linux to /init's marker`,
    ["root", "iproute2", "qemu-x86", "seabios", "ipxe", "busybox-static", "kernel"],
    async () => {
      const run = await bootIpxe(server);
      assertBooted(run);
      for (const name of ["boot.ipxe", "vmlinuz", "initrd.gz"]) {
        const lines = assertServed(run, name);
        assert.is(lines.length, 1, `${name} was fetched ${lines.length} times:\n${run.log}`);
      }
      const order = transfers(run.log).map((t) => t.filename);
      assert.equal(order, ["boot.ipxe", "vmlinuz", "initrd.gz"], "iPXE fetches the script first, then what it names, in order");
    },
  );
}

test.run();
