/**
 * The smallest Linux initramfs that can judge a network boot: busybox-static
 * and an /init that prints one marker line with the sha256 of a payload that
 * travelled inside the initrd and the kernel command line it was given, then
 * powers the machine off. A corrupt initrd fails to unpack (gzip has a CRC); a
 * wrong payload shows as a wrong hash.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { CHARDEV, cpioNewc, DIR, FILE, SYMLINK } from "./cpio.ts";

export const BUSYBOX = "/bin/busybox";
/** What /init prints before the checks, and the marker of the line it prints after them. */
export const INIT_STARTED = "EMMER-INIT started";
export const INIT_MARKER = "EMMER-INIT payload-sha256=";

const INIT = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
echo "${INIT_STARTED}"
echo "${INIT_MARKER}$(sha256sum /payload.bin | cut -d' ' -f1) cmdline=$(cat /proc/cmdline)"
poweroff -f
`;

/** A gzipped newc initrd holding busybox (from `busybox`), the /init above and `payload` as /payload.bin. */
export function buildInitrd(payload: Uint8Array, busybox = BUSYBOX): Uint8Array {
  const enc = new TextEncoder();
  const cpio = cpioNewc([
    { name: "bin", mode: DIR | 0o755 },
    { name: "bin/busybox", mode: FILE | 0o755, data: new Uint8Array(readFileSync(busybox)) },
    ...["sh", "mount", "echo", "sha256sum", "cut", "cat", "poweroff"].map((applet) => (
      { name: `bin/${applet}`, mode: SYMLINK | 0o777, data: enc.encode("busybox") }
    )),
    { name: "dev", mode: DIR | 0o755 },
    { name: "dev/console", mode: CHARDEV | 0o600, rdev: { major: 5, minor: 1 } },
    { name: "proc", mode: DIR | 0o755 },
    { name: "init", mode: FILE | 0o755, data: enc.encode(INIT) },
    { name: "payload.bin", mode: FILE | 0o644, data: payload },
  ]);
  return new Uint8Array(gzipSync(cpio, { level: 6 }));
}
