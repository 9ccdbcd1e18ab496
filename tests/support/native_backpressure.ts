// Run inside a network namespace whose loopback is slowed by a tbf qdisc
// (tests/native_datagrams.test.ts makes it with unshare -n): sends stay
// charged to the socket while the qdisc holds them, so a small send buffer
// fills and the kernel answers EAGAIN. Prints one JSON line of what happened.
import process from "node:process";
import { loadNative } from "../../adapters/native/detect.ts";
import { ReceiveBatch } from "../../adapters/native/datagrams.ts";
import { sendWindow } from "../../adapters/native/window.ts";
import { SO_SNDBUF, SOL_SOCKET } from "../../adapters/native/abi.ts";

const { native, detection } = await loadNative();
if (!native) {
  console.log(JSON.stringify({ skipped: detection.reason }));
  process.exit(0);
}
const to = native.openUdp("127.0.0.1", 0);
function sender() {
  const s = native!.openUdp("127.0.0.1", 0);
  const small = new Uint8Array(4);
  new DataView(small.buffer).setInt32(0, 4096, true); // the kernel doubles it, then floors it at 4,608
  native!.libc.setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, small, 4);
  return s;
}
const datagram = (i: number) => {
  const d = new Uint8Array(1000);
  d[0] = i >> 8;
  d[1] = i & 0xff;
  return d;
};
// sendmmsg: 40 datagrams of 1,000 bytes into a ~9 KiB send buffer.
const a = sender();
const list = Array.from({ length: 40 }, (_, i) => ({ data: datagram(i), address: "127.0.0.1", port: to.port }));
const mmsg = native.sendmmsg(a.fd, list);
const again = native.sendmmsg(a.fd, list.slice(mmsg.sent));
// GSO: the first window fits (an empty buffer takes one send of any size), the second does not.
const b = sender();
const window = new Uint8Array(16 * 1000);
for (let i = 0; i < 16; i++) window.set(datagram(100 + i).subarray(0, 2), i * 1000);
const gso1 = native.sendGso(b.fd, window, 1000, "127.0.0.1", to.port);
const gso2 = native.sendGso(b.fd, window, 1000, "127.0.0.1", to.port);
const handed: number[] = [];
const viaWindow = sendWindow(native, b.fd, window, 1000, "127.0.0.1", to.port, (d) => handed.push((d[0] << 8) | d[1]));
// What arrives, as the qdisc lets it through (bounded: 5 s).
const got: number[] = [];
const batch = new ReceiveBatch(64, 1000);
const expected = mmsg.sent + (gso1.sent + gso2.sent + viaWindow.gso);
const deadline = Date.now() + 5000;
while (got.length < expected && Date.now() < deadline) {
  if (!native.waitReadable(to.fd, 200)) continue;
  const r = native.recvmmsg(to.fd, batch);
  for (let i = 0; i < r.received; i++) got.push((batch.datagram(i)[0] << 8) | batch.datagram(i)[1]);
}
// Nothing more comes: whatever was not counted as sent was not sent.
const extra = native.waitReadable(to.fd, 300) ? native.recvmmsg(to.fd, batch).received : 0;
console.log(JSON.stringify({ mmsg, again, gso1, gso2, viaWindow, handed, got, extra }));
