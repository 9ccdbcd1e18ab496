/**
 * The boot matrix: real firmware in QEMU (software emulation, no KVM) fetching
 * files from a TFTP server inside a private network namespace. Each run
 * returns what the guest's console and the server printed, how long it took
 * and what went wrong, judged from the guest's side (its own checksum of the
 * bytes it got). The tests add the server-log checks; bench/boot.mjs runs the
 * same matrix against tftpd-hpa too.
 */
export type { BootRun } from "./boot_common.ts";
export { bootIpxe } from "./boot_ipxe.ts";
export { bootOvmf } from "./boot_ovmf.ts";
export { bootUboot, type UbootCase } from "./boot_uboot.ts";
