import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { type BootRun, elapsed, newRun, QEMU_COMMON, served, serveGuest, withWorkdir } from "./boot_common.ts";
import { QEMU_ARM, UBOOT_ARM } from "./firmware.ts";
import { withNetns } from "./netns.ts";
import { startChild } from "./process.ts";
import type { ServerName } from "./servers.ts";

export interface UbootCase {
  blksize: number;
  /** U-Boot's tftpwindowsize; 1 is lock-step (U-Boot then asks for no windowsize) */
  windowsize: number;
  size: number;
  /** how long tftpboot gets before QEMU is killed */
  tftpTimeoutMs?: number;
  /** the network card (default e1000, whose U-Boot driver has one receive buffer) */
  card?: "e1000" | "virtio-net";
}

/**
 * U-Boot (qemu_arm, on QEMU's "virt" board) with an e1000 (or virtio-net) card behind slirp runs
 * tftpboot from a server outside slirp's subnet (10.99.0.1 on the namespace's lo: slirp sends it
 * there through the gateway), then crc32 over what it loaded.
 */
export function bootUboot(server: ServerName, c: UbootCase): Promise<BootRun> {
  const options = `blksize ${c.blksize}${c.windowsize > 1 ? ` windowsize ${c.windowsize}` : ""}, ${(c.size / 2 ** 20).toFixed(1)} MiB`;
  const card = c.card ?? "e1000";
  const run = newRun("U-Boot tftpboot", card, options, server);
  const tftpTimeoutMs = c.tftpTimeoutMs ?? 60_000;
  return withWorkdir(async (_dir, root) => {
    const file = randomBytes(c.size);
    await writeFile(join(root, "file.bin"), file);
    await served(run, root, ["file.bin"]);
    await withNetns(async (ns) => {
      ns.ip("addr", "add", "10.99.0.1/32", "dev", "lo");
      const start = () => startChild(ns.exec([
        QEMU_ARM, "-M", "virt", "-m", "512", "-bios", UBOOT_ARM, ...QEMU_COMMON,
        "-netdev", "user,id=n0", "-device", `${card === "e1000" ? "e1000" : "virtio-net-pci"},netdev=n0,romfile=`,
      ]), 60_000 + tftpTimeoutMs);
      await serveGuest(run, ns, { root, host: "10.99.0.1", port: 69 }, start, async (qemu) => {
        await qemu.waitFor(/Hit any key to stop autoboot/, 60_000, "U-Boot's autoboot prompt");
        qemu.send("\n");
        await qemu.waitFor(/=> $/, 10_000, "U-Boot's command prompt");
        const from = qemu.output().length;
        const cmd = [
          "setenv autoload no", "setenv netretry no",
          "setenv ipaddr 10.0.2.15", "setenv netmask 255.255.255.0", "setenv gatewayip 10.0.2.2", "setenv serverip 10.99.0.1",
          `setenv tftpblocksize ${c.blksize}`, `setenv tftpwindowsize ${c.windowsize}`,
          "if tftpboot ${kernel_addr_r} file.bin; then echo EMMER-TFTP-OK; crc32 ${kernel_addr_r} ${filesize}; else echo EMMER-TFTP-FAILED; fi",
          "poweroff",
        ].join("; ");
        const t0 = process.hrtime.bigint();
        qemu.send(`${cmd}\n`);
        // U-Boot echoes the command line, markers and all: look only past the echo.
        const echo = await qemu.waitFor(/poweroff\r?\n/, 10_000, "U-Boot's echo of the command", from);
        const after = (echo.index ?? 0) + echo[0].length;
        const result = await qemu.waitFor(/EMMER-TFTP-(OK|FAILED)/, tftpTimeoutMs, "the end of tftpboot", after);
        run.seconds = elapsed(t0);
        if (result[1] !== "OK") {
          const said = qemu.output().slice(after, result.index).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
          throw new Error(`tftpboot failed after ${run.seconds.toFixed(1)} s: ${said.slice(-2).join(" / ")}`);
        }
        const crc = await qemu.waitFor(/crc32 for [0-9a-f]+ \.\.\. [0-9a-f]+ ==> ([0-9a-f]{8})/, 10_000, "crc32's result", after);
        const want = crc32(file).toString(16).padStart(8, "0");
        if (crc[1] !== want) run.problems.push(`U-Boot's crc32 is ${crc[1]}, the file's ${want}`);
        const got = /Bytes transferred = (\d+)/.exec(qemu.output().slice(after));
        if (Number(got?.[1]) !== c.size) run.problems.push(`U-Boot loaded ${got?.[1]} bytes, not ${c.size}`);
      }, 10_000);
    });
    return run;
  });
}
