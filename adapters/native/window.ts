/**
 * A window laid out as [header][block][header][block]... sent as datagrams of
 * `segmentSize` bytes (the last may be shorter): by GSO sends where the batch
 * path exists, and through `sendOne` (the runtime's per-datagram send) for
 * everything else, including whatever a GSO send did not take. Every segment
 * leaves by one path or the other, in order: the peer sees the same datagrams.
 */
import type { BatchDatagrams } from "./datagrams.ts";

export interface WindowResult {
  /** Segments that went out in GSO sends. */
  gso: number;
  /** Segments handed to sendOne. */
  single: number;
  /** 0, or the errno that moved the rest of the window to sendOne. */
  errno: number;
}

export function sendWindow(
  native: Pick<BatchDatagrams, "sendSegmented"> | null,
  fd: number,
  window: Uint8Array,
  segmentSize: number,
  address: string,
  port: number,
  sendOne: (datagram: Uint8Array) => void,
): WindowResult {
  let gso = 0, errno = 0;
  if (native) ({ sent: gso, errno } = native.sendSegmented(fd, window, segmentSize, address, port));
  let single = 0;
  for (let at = gso * segmentSize; at < window.length; at += segmentSize) {
    sendOne(window.subarray(at, Math.min(window.length, at + segmentSize)));
    single++;
  }
  return { gso, single, errno };
}

/**
 * Splits datagrams bound for one peer into runs a GSO send can take: datagrams of one
 * size, each right after the other in one buffer (a window's ring slots); the last of a
 * run may be shorter (the file's last block), and a ring's wrap ends a run. Calls `run`
 * with each, in order, as one view and its segment size.
 */
export function eachRun(datagrams: readonly Uint8Array[], run: (bytes: Uint8Array, segment: number, count: number) => void): void {
  let i = 0;
  while (i < datagrams.length) {
    const first = datagrams[i];
    const size = first.length;
    if (size === 0) {
      run(first, 0, 1); // nothing to segment
      i++;
      continue;
    }
    let end = first.byteOffset + size;
    let j = i + 1;
    while (j < datagrams.length) {
      const d = datagrams[j];
      if (d.buffer !== first.buffer || d.byteOffset !== end || d.length > size || d.length === 0) break;
      end += d.length;
      j++;
      if (d.length < size) break;
    }
    run(new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset), size, j - i);
    i = j;
  }
}
