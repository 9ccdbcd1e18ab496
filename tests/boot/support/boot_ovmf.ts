import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type BootRun, elapsed, newRun, QEMU_COMMON, served, serveGuest, sha256, withWorkdir } from "./boot_common.ts";
import { OVMF_CODE, OVMF_VARS, QEMU_X86 } from "./firmware.ts";
import { type Netns, withNetns } from "./netns.ts";
import { type Child, startChild } from "./process.ts";
import type { ServerName } from "./servers.ts";

/** A GRUB EFI image (grub-mkimage from Debian's modules) whose embedded config prints `nonce`, hashes a file it fetches itself, and halts. */
function buildGrub(out: string, dir: string, nonce: string): void {
  const cfg = join(dir, "embedded.cfg");
  const script = [
    `echo EMMER-GRUB started ${nonce}`,
    "sha256sum (tftp,$net_default_server)/payload.bin",
    "echo EMMER-GRUB done",
    "halt",
  ].join("\n");
  writeFileSync(cfg, `${script}\n`);
  const r = spawnSync("grub-mkimage", [
    "-O", "x86_64-efi", "-o", out, "-p", "(tftp)/grub", "-c", cfg,
    "echo", "net", "efinet", "tftp", "hashsum", "gcry_sha256", "halt", "normal",
  ], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`grub-mkimage failed: ${r.error?.message ?? r.stderr}`);
}

/** A tap device in `ns` (10.98.0.1/24) with dnsmasq answering DHCP only (--port=0: no DNS), naming `bootfile` on 10.98.0.1. */
async function dhcpOnTap(ns: Netns, dir: string, bootfile: string): Promise<Child> {
  ns.ip("tuntap", "add", "tap0", "mode", "tap");
  ns.ip("addr", "add", "10.98.0.1/24", "dev", "tap0");
  ns.ip("link", "set", "tap0", "up");
  const dnsmasq = startChild(ns.exec([
    "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--log-facility=-",
    "--interface=tap0", "--bind-interfaces", "--dhcp-range=10.98.0.10,10.98.0.50,255.255.255.0",
    `--dhcp-boot=${bootfile},,10.98.0.1`, `--dhcp-leasefile=${join(dir, "leases")}`, `--pid-file=${join(dir, "dnsmasq.pid")}`,
  ]), 600_000);
  try {
    await dnsmasq.waitFor(/DHCP, IP range/, 10_000, "dnsmasq's startup line");
  } catch (e) {
    await dnsmasq.stop();
    throw e;
  }
  return dnsmasq;
}

/**
 * OVMF's own UEFI PXE (EDK2's PxeBcDxe over its VirtioNetDxe: the card's iPXE ROM is left out) takes
 * DHCP from dnsmasq on a tap device and loads GRUB from the server on port 69. GRUB prints the nonce
 * built into its image, fetches payload.bin over TFTP itself and prints its sha256.
 */
export function bootOvmf(server: ServerName, timeoutMs = 150_000): Promise<BootRun> {
  const run = newRun("UEFI PXE (OVMF) + GRUB", "virtio-net", "port 69, tap+dnsmasq", server);
  return withWorkdir(async (dir, root) => {
    const payload = randomBytes(1 << 20);
    const nonce = randomBytes(6).toString("hex");
    buildGrub(join(root, "grubx64.efi"), dir, nonce);
    await writeFile(join(root, "payload.bin"), payload);
    await served(run, root, ["grubx64.efi", "payload.bin"]);
    const vars = join(dir, "vars.fd");
    await copyFile(OVMF_VARS, vars);
    await withNetns(async (ns) => {
      const dnsmasq = await dhcpOnTap(ns, dir, "grubx64.efi");
      try {
        let t0 = 0n;
        const start = () => {
          t0 = process.hrtime.bigint();
          return startChild(ns.exec([
            QEMU_X86, "-M", "q35", "-m", "256", ...QEMU_COMMON,
            "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,file=${vars}`,
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,romfile=,bootindex=1",
          ]), timeoutMs);
        };
        await serveGuest(run, ns, { root, host: "10.98.0.1", port: 69 }, start, async (qemu) => {
          await qemu.waitFor(new RegExp(`EMMER-GRUB started ${nonce}`), timeoutMs, "GRUB's first line");
          const m = await qemu.waitFor(/([0-9a-f]{64}) +\(tftp,[^)]*\)\/payload\.bin/, 30_000, "GRUB's sha256sum of payload.bin");
          await qemu.waitFor(/EMMER-GRUB done/, 10_000, "GRUB's last line");
          run.seconds = elapsed(t0);
          if (m[1] !== sha256(payload)) run.problems.push(`GRUB hashed payload.bin as ${m[1]}, not ${sha256(payload)}`);
        });
      } finally {
        await dnsmasq.stop();
      }
    });
    return run;
  });
}
