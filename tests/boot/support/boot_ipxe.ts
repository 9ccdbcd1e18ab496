import { randomBytes } from "node:crypto";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type BootRun, elapsed, newRun, QEMU_COMMON, served, serveGuest, sha256, withWorkdir } from "./boot_common.ts";
import { IPXE_E1000_ROM, KERNEL, QEMU_X86 } from "./firmware.ts";
import { buildInitrd, INIT_MARKER } from "./initrd.ts";
import { withNetns } from "./netns.ts";
import { startChild } from "./process.ts";
import type { ServerName } from "./servers.ts";

/**
 * SeaBIOS runs iPXE's ROM on an e1000, which takes its boot file from slirp's DHCP: a script on the
 * server at 10.0.2.2:PORT (slirp's name for the namespace's 127.0.0.1). The script fetches a kernel
 * and an initrd and boots Linux, whose /init prints the payload's sha256 and the command line.
 */
export function bootIpxe(server: ServerName, timeoutMs = 150_000): Promise<BootRun> {
  const port = 6969;
  const run = newRun("iPXE (SeaBIOS)", "e1000", "script+kernel+initrd, slirp", server);
  return withWorkdir(async (_dir, root) => {
    const payload = randomBytes(1 << 20);
    const nonce = randomBytes(6).toString("hex");
    const url = `tftp://10.0.2.2:${port}`;
    await writeFile(join(root, "boot.ipxe"), `#!ipxe\nkernel ${url}/vmlinuz console=ttyS0 quiet panic=-1 emmer=${nonce}\ninitrd ${url}/initrd.gz\nboot\n`);
    await copyFile(KERNEL, join(root, "vmlinuz"));
    await writeFile(join(root, "initrd.gz"), buildInitrd(payload));
    await served(run, root, ["boot.ipxe", "vmlinuz", "initrd.gz"]);
    await withNetns(async (ns) => {
      ns.ip("addr", "add", "10.99.0.1/32", "dev", "lo"); // tftpd-hpa exits when 127.0.0.1 is the only address
      let t0 = 0n;
      const start = () => {
        t0 = process.hrtime.bigint();
        return startChild(ns.exec([
          QEMU_X86, "-M", "pc", "-m", "256", ...QEMU_COMMON, "-boot", "n",
          "-netdev", `user,id=n0,bootfile=${url}/boot.ipxe`, "-device", `e1000,netdev=n0,romfile=${IPXE_E1000_ROM}`,
        ]), timeoutMs);
      };
      await serveGuest(run, ns, { root, host: "127.0.0.1", port }, start, async (qemu) => {
        const m = await qemu.waitFor(new RegExp(`${INIT_MARKER}([0-9a-f]{64}) cmdline=([^\\r\\n]*)\\r?\\n`), timeoutMs, "/init's marker line");
        run.seconds = elapsed(t0);
        if (m[1] !== sha256(payload)) run.problems.push(`/init hashed the payload as ${m[1]}, not ${sha256(payload)}`);
        if (!m[2].split(" ").includes(`emmer=${nonce}`)) run.problems.push(`the kernel's command line "${m[2]}" is not the script's`);
      });
    });
    return run;
  });
}
