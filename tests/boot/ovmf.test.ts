// OVMF (EDK2) UEFI PXE, the firmware's own TFTP client, loads GRUB from
// emmer-node on port 69 (tap device, dnsmasq for DHCP): first a request for
// tsize that it aborts with ERROR 8 once it knows the size, then the
// download with windowsize 4. GRUB, once running, fetches a file itself.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bootTest } from "./support/gate.ts";
import { assertBooted, assertServed } from "./support/checks.ts";
import { bootOvmf } from "./support/scenarios.ts";

// And in single-port mode (every answer from port 69), which EDK2's MTFTP must take as the server's TID.
for (const server of ["emmer-node", "emmer-node --single-port"] as const) {
  bootTest(
    `OVMF UEFI PXE (virtio-net) loads GRUB from ${server} on port 69: tsize probe aborted with ERROR 8, then windowsize 4`,
    ["root", "iproute2", "qemu-x86", "ovmf", "grub-efi", "dnsmasq"],
    async () => {
      const run = await bootOvmf(server);
      assertBooted(run);
      const grub = assertServed(run, "grubx64.efi");
      assert.is(grub.length, 2, `EDK2 asks twice (size, then file):\n${run.log}`);
      const [probe, download] = grub;
      assert.match(probe.outcome, /client sent ERROR 8/, `the first request is the size probe: ${probe.line}`);
      assert.ok(probe.oack?.tsize !== undefined, `the probe asked for tsize: ${probe.line}`);
      assert.is(download.oack?.windowsize, "4", `EDK2 downloads with windowsize 4: ${download.line}`);
      assertServed(run, "payload.bin");
    },
  );
}

test.run();
