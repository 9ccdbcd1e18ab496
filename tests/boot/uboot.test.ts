// U-Boot's tftpboot (qemu_arm on QEMU's "virt" board, e1000 card behind
// slirp) against emmer-node on port 69, each load checked by U-Boot's own
// crc32: lock-step at blksize 1468, a window of 8 (the e1000 driver takes
// only the first packets of a back-to-back burst: the server has to adapt),
// and a file over 32 MiB at blksize 512, where the block number rolls over.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { bootTest } from "./support/gate.ts";
import { assertBooted, assertServed } from "./support/checks.ts";
import { bootUboot } from "./support/scenarios.ts";

const NEEDS = ["root", "iproute2", "qemu-arm", "u-boot"] as const;

// Also in single-port mode (every answer from port 69), which U-Boot must take as the server's TID.
for (const server of ["emmer-node", "emmer-node --single-port"] as const) {
  bootTest(`U-Boot tftpboot (e1000) at blksize 1468, lock-step, from ${server}: crc32 matches`, NEEDS, async () => {
    const run = await bootUboot(server, { blksize: 1468, windowsize: 1, size: 4 * 2 ** 20 + 321 });
    assertBooted(run);
    const [t] = assertServed(run, "file.bin");
    assert.is(t.oack?.blksize, "1468", t.line);
    assert.is(t.oack?.windowsize, undefined, `U-Boot asks for no window with tftpwindowsize 1: ${t.line}`);
  });
}

bootTest("U-Boot tftpboot (e1000) at blksize 1468 with tftpwindowsize 8: completes, crc32 matches", NEEDS, async () => {
  const run = await bootUboot("emmer-node", { blksize: 1468, windowsize: 8, size: 4 * 2 ** 20 + 321, tftpTimeoutMs: 60_000 });
  assertBooted(run);
  const lines = assertServed(run, "file.bin");
  const last = lines[lines.length - 1];
  assert.is(last.oack?.windowsize, "8", last.line);
  // The card drops all but the first datagrams of a burst: the server must have sent smaller ones.
  assert.ok(last.minBurst < 8, `the window went out in bursts of 8 to a card that drops them: ${last.line}`);
});

bootTest("U-Boot tftpboot (e1000) of a file over 32 MiB at blksize 512: the block number rolls over, crc32 matches", NEEDS, async () => {
  const size = 33 * 2 ** 20 + 4321; // 67593 blocks of 512: past block 65535
  const run = await bootUboot("emmer-node", { blksize: 512, windowsize: 1, size, tftpTimeoutMs: 120_000 });
  assertBooted(run);
  const [t] = assertServed(run, "file.bin");
  assert.is(t.blksize, 512, t.line);
});

test.run();
