/**
 * Where the firmware, QEMU and the kernel the boot tests use live on Debian 12
 * (.ci/install-boot.sh installs them), and what is missing on this machine.
 */
import { spawnSync } from "node:child_process";
import { existsSync, openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";

/** Where .ci/install-boot.sh unpacks the kernel (a Debian linux-image-amd64 bzImage) as vmlinuz. */
export const CACHE = process.env.EMMER_BOOT_CACHE ?? "/var/cache/emmer-boot";
export const KERNEL = join(CACHE, "vmlinuz");

export const QEMU_X86 = "qemu-system-x86_64";
export const QEMU_ARM = "qemu-system-arm";
/** iPXE's ROM for QEMU's e1000 (ipxe-qemu): a legacy PXE image for SeaBIOS and an EFI driver in one. */
export const IPXE_E1000_ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom";
export const SEABIOS = "/usr/share/seabios/bios-256k.bin";
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
export const UBOOT_ARM = "/usr/lib/u-boot/qemu_arm/u-boot.bin";
export const GRUB_EFI_MODULES = "/usr/lib/grub/x86_64-efi";

const onPath = (cmd: string) => spawnSync("sh", ["-c", `command -v "$0"`, cmd], { timeout: 5000 }).status === 0;

/** True when `path` is an ELF executable without a program interpreter (runs with no libc around it). */
export function isStaticElf(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false; // 64-bit ELF only
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } finally {
    closeSync(fd);
  }
}

export type Need = "root" | "iproute2" | "qemu-x86" | "qemu-arm" | "ipxe" | "seabios" | "ovmf" | "u-boot" | "grub-efi" | "dnsmasq" | "busybox-static" | "kernel";

const CHECKS: Record<Need, () => string | null> = {
  root: () => (process.getuid?.() === 0 ? null : "root (network namespaces, tap devices)"),
  iproute2: () => (onPath("ip") ? null : "ip (iproute2)"),
  "qemu-x86": () => (onPath(QEMU_X86) ? null : `${QEMU_X86} (qemu-system-x86)`),
  "qemu-arm": () => (onPath(QEMU_ARM) ? null : `${QEMU_ARM} (qemu-system-arm)`),
  ipxe: () => (existsSync(IPXE_E1000_ROM) ? null : `${IPXE_E1000_ROM} (ipxe-qemu)`),
  seabios: () => (existsSync(SEABIOS) ? null : `${SEABIOS} (seabios)`),
  ovmf: () => (existsSync(OVMF_CODE) && existsSync(OVMF_VARS) ? null : `${OVMF_CODE} (ovmf)`),
  "u-boot": () => (existsSync(UBOOT_ARM) ? null : `${UBOOT_ARM} (u-boot-qemu)`),
  "grub-efi": () => (onPath("grub-mkimage") && existsSync(join(GRUB_EFI_MODULES, "efinet.mod")) ? null : "grub-mkimage and x86_64-efi modules (grub-efi-amd64-bin)"),
  dnsmasq: () => (onPath("dnsmasq") ? null : "dnsmasq (dnsmasq-base)"),
  "busybox-static": () => (isStaticElf("/bin/busybox") ? null : "a static /bin/busybox (busybox-static)"),
  kernel: () => (existsSync(KERNEL) ? null : `${KERNEL} (a linux-image-amd64 kernel, unpacked by .ci/install-boot.sh)`),
};

/** What of `needs` this machine lacks, in words; empty when all is there. */
export function missing(needs: readonly Need[]): string[] {
  return needs.map((n) => CHECKS[n]()).filter((m): m is string => m !== null);
}
