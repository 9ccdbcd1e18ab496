/**
 * A writer for the cpio "newc" format, the one the Linux kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst): each
 * entry is a 110-byte ASCII header of hex fields, the NUL-ended name and the
 * data, both padded to 4 bytes; "TRAILER!!!" ends the archive.
 */
import { concat } from "../../support/session_driver.ts";

export interface CpioEntry {
  /** path inside the archive, without a leading "/" */
  name: string;
  /** file type and permission bits, e.g. 0o100755 for an executable, 0o040755 for a folder */
  mode: number;
  /** file contents (files), the target path (symlinks); nothing for folders */
  data?: Uint8Array;
  /** device number of a character or block device node */
  rdev?: { major: number; minor: number };
}

export const FILE = 0o100000;
export const DIR = 0o040000;
export const SYMLINK = 0o120000;
export const CHARDEV = 0o020000;

const hex8 = (n: number) => n.toString(16).padStart(8, "0");
const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** The archive holding `entries` in order (folders before what they hold), then the trailer. */
export function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let ino = 1;
  const add = (name: string, mode: number, data: Uint8Array, rdev = { major: 0, minor: 0 }) => {
    if (name.startsWith("/") || name.includes("\0")) throw new Error(`cpio: bad entry name ${JSON.stringify(name)}`);
    const nameBytes = enc.encode(`${name}\0`);
    const fields = [
      ino++, mode, 0, 0, (mode & 0o170000) === DIR ? 2 : 1, 0, data.length, 0, 0, rdev.major, rdev.minor, nameBytes.length, 0,
    ];
    const header = enc.encode(`070701${fields.map(hex8).join("")}`);
    parts.push(header, nameBytes, new Uint8Array(pad4(header.length + nameBytes.length)), data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? new Uint8Array(0), e.rdev);
  add("TRAILER!!!", 0, new Uint8Array(0));
  return concat(parts);
}
