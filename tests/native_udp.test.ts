// Sockets of Emmer's own (adapters/native_udp.ts) against a scripted kernel: what a wake-up
// drains, when its answers leave and in how many calls, what waits for writability and in
// which order, what a refusal or a close does to the senders' callbacks. The loopback suite
// runs the same sockets for real on Node (tests/run.mjs: node; node-plain runs without them).
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { batchStats, nativeSockets } from "../adapters/native_udp.ts";
import { loadRuntime, runtimeName } from "../adapters/runtime.ts";
import { Emmer, TftpClient } from "../mod.ts";
import { bytesOf } from "./support/session_driver.ts";
import { microtaskErrors } from "./support/microtask_errors.ts";
import { type BatchDatagrams, EAGAIN, EINVAL, type Outgoing, type ReceiveBatch } from "../adapters/native/datagrams.ts";
import { EMSGSIZE } from "../adapters/native/abi.ts";
import { writeSockaddr } from "../adapters/native/sockaddr.ts";
import type { DatagramTransport, Runtime } from "../core/transport.ts";

interface Sent {
  call: "sendmmsg" | "gso";
  datagrams: number[][];
  to: string[];
}

/**
 * A kernel with a send buffer of `room` datagrams (Infinity: no limit); `refuse` names
 * destinations ("address:port") it refuses with EINVAL, as it does port 0.
 */
function kernel({ room = Infinity, refuse = [] as string[], gsoLimit = Infinity } = {}) {
  const inbox: { data: number[]; address: string; port: number }[] = [];
  const sent: Sent[] = [];
  let onReady: ((readable: boolean, writable: boolean) => void) | null = null;
  const state = { room, writable: false, stopped: false, closed: [] as number[], gsoTries: 0 };
  const take = (n: number) => {
    const k = Math.min(n, state.room);
    state.room -= k;
    return k;
  };
  const native = {
    libc: {
      watch(_fd: number, ready: (readable: boolean, writable: boolean) => void) {
        onReady = ready;
        return { writable: (on: boolean) => void (state.writable = on), stop: () => void (state.stopped = true) };
      },
    },
    openUdp: (address: string, port: number) => ({ fd: 7, family: 4 as const, address, port: port || 4000 }),
    close: (fd: number) => void state.closed.push(fd),
    recvmmsg(_fd: number, batch: ReceiveBatch) {
      let n = 0;
      while (n < batch.capacity && inbox.length > 0) {
        const d = inbox.shift()!;
        batch.data.set(d.data, n * batch.slotSize);
        batch.lengths[n] = d.data.length;
        writeSockaddr(new DataView(batch.names.buffer), n * 28, 4, d.address, d.port);
        n++;
      }
      return n > 0 ? { received: n, errno: 0 } : { received: 0, errno: EAGAIN };
    },
    sendmmsg(_fd: number, list: readonly Outgoing[], from = 0, to = list.length) {
      let stop = to;
      const bad = list.slice(from, to).findIndex((d) => refuse.includes(`${d.address}:${d.port}`));
      if (bad >= 0) stop = from + bad;
      const k = take(stop - from);
      if (k > 0) sent.push({ call: "sendmmsg", datagrams: list.slice(from, from + k).map((d) => [...d.data]), to: list.slice(from, from + k).map((d) => `${d.address}:${d.port}`) });
      if (k < stop - from) return { sent: k, errno: EAGAIN };
      return { sent: k, errno: stop < to ? EINVAL : 0 };
    },
    sendSegmented(_fd: number, buffer: Uint8Array, segment: number, address: string, port: number) {
      const segments = Math.ceil(buffer.length / segment);
      state.gsoTries++;
      // A segment over the path's MTU: the kernel will not cut it (a plain send would be fragmented).
      if (segment > gsoLimit) return { sent: 0, errno: EMSGSIZE };
      const k = take(segments);
      const datagrams: number[][] = [];
      for (let i = 0; i < k; i++) datagrams.push([...buffer.subarray(i * segment, (i + 1) * segment)]);
      if (k > 0) sent.push({ call: "gso", datagrams, to: datagrams.map(() => `${address}:${port}`) });
      return { sent: k, errno: k < segments ? EAGAIN : 0 };
    },
  };
  return {
    native: native as unknown as BatchDatagrams,
    inbox,
    sent,
    state,
    /** The poll handle reports: readable, writable, or both. */
    wake: (readable: boolean, writable = false) => onReady!(readable, writable),
  };
}

const noBase = { bind: () => Promise.reject(new Error("the runtime's socket was used")) } as unknown as Runtime;

async function socket(k: ReturnType<typeof kernel>, onMessage: (t: DatagramTransport, data: Uint8Array, address: string, port: number) => void = () => {}) {
  // The handler runs only on a wake-up, after the socket is made.
  const t: DatagramTransport = await nativeSockets(noBase, k.native, false).bind("127.0.0.1", 0, (d, a, p) => onMessage(t, d, a, p), 516);
  return t;
}

/** A counter of done() calls. */
function dones() {
  const c = { n: 0, done: () => void c.n++ };
  return c;
}

test("a wake-up drains every queued datagram, and the answers leave together in one sendmmsg, in order", async () => {
  const k = kernel();
  const c = dones();
  const seen: string[] = [];
  await socket(k, (t, data, address, port) => {
    seen.push(`${address}:${port}:${data[0]}`);
    t.send(new Uint8Array([data[0] + 100]), port, address, c.done);
    assert.is(k.sent.length, 0, "an answer left before the wake-up's datagrams were all handled");
  });
  k.inbox.push({ data: [1], address: "127.0.0.1", port: 5001 }, { data: [2], address: "127.0.0.2", port: 5002 }, { data: [3], address: "127.0.0.1", port: 5003 });
  k.wake(true);
  assert.equal(seen, ["127.0.0.1:5001:1", "127.0.0.2:5002:2", "127.0.0.1:5003:3"]);
  assert.equal(k.sent, [{ call: "sendmmsg", datagrams: [[101], [102], [103]], to: ["127.0.0.1:5001", "127.0.0.2:5002", "127.0.0.1:5003"] }]);
  assert.is(c.n, 3);
});

test("more than a batch queued: the wake-up takes several recvmmsg rounds", async () => {
  const k = kernel();
  let handled = 0;
  await socket(k, () => void handled++);
  for (let i = 0; i < 150; i++) k.inbox.push({ data: [i & 255], address: "127.0.0.1", port: 6000 + i });
  k.wake(true);
  assert.is(handled, 150);
});

test("a send outside a wake-up (a timer's retransmission) leaves at once", async () => {
  const k = kernel();
  const t = await socket(k);
  const c = dones();
  t.send(new Uint8Array([9]), 69, "127.0.0.1", c.done);
  assert.equal(k.sent, [{ call: "sendmmsg", datagrams: [[9]], to: ["127.0.0.1:69"] }]);
  assert.is(c.n, 1);
});

test("EAGAIN: what the kernel did not take, and every send after it, waits (copied) for writability, then leaves in order", async () => {
  const k = kernel({ room: 1 });
  const t = await socket(k);
  const c = dones();
  const ring = new Uint8Array([1, 2, 3]);
  for (let i = 0; i < 3; i++) t.send(ring.subarray(i, i + 1), 69, "127.0.0.1", c.done);
  assert.equal(k.sent.map((s) => s.datagrams), [[[1]]]);
  assert.is(c.n, 3, "done for every datagram: the kernel took it, or a copy waits");
  ring.fill(0); // the sender may reuse its bytes once done ran
  assert.ok(k.state.writable, "writability was not asked for");
  t.send(new Uint8Array([4]), 69, "127.0.0.1", c.done);
  assert.is(k.sent.length, 1, "a later send overtook the waiting ones");
  k.state.room = Infinity;
  k.wake(false, true);
  assert.equal(k.sent.map((s) => s.datagrams), [[[1]], [[2], [3], [4]]]);
  assert.is(c.n, 4);
  assert.not.ok(k.state.writable, "still asking for writability with nothing to send");
});

test("a window is one GSO send; cut short by EAGAIN, its rest goes first once writable, then the sends after it", async () => {
  const k = kernel({ room: 2 });
  const t = await socket(k);
  const c = dones();
  const ring = new Uint8Array([1, 1, 2, 2, 3, 3, 4]); // four datagrams of 2 bytes, the last one short
  const window = [ring.subarray(0, 2), ring.subarray(2, 4), ring.subarray(4, 6), ring.subarray(6, 7)];
  t.sendMany!(window, 69, "127.0.0.1", c.done);
  t.send(new Uint8Array([9]), 69, "127.0.0.1", c.done);
  assert.equal(k.sent, [{ call: "gso", datagrams: [[1, 1], [2, 2]], to: ["127.0.0.1:69", "127.0.0.1:69"] }]);
  assert.is(c.n, 5);
  ring.fill(0);
  k.state.room = Infinity;
  k.wake(false, true);
  assert.equal(k.sent.slice(1).map((s) => [s.call, s.datagrams]), [["gso", [[3, 3], [4]]], ["sendmmsg", [[9]]]]);
  assert.is(c.n, 5);
});

test("a window split by its ring's wrap goes as two runs, in order", async () => {
  const k = kernel();
  const t = await socket(k);
  const end = new Uint8Array([1, 1, 2, 2]), start = new Uint8Array([3, 3, 4, 4]);
  t.sendMany!([end.subarray(0, 2), end.subarray(2, 4), start.subarray(0, 2), start.subarray(2, 4)], 69, "127.0.0.1", () => {});
  assert.equal(k.sent.map((s) => [s.call, s.datagrams]), [["gso", [[1, 1], [2, 2]]], ["gso", [[3, 3], [4, 4]]]]);
});

test("a destination the kernel refuses: that datagram is lost (its done runs), the rest go on", async () => {
  const k = kernel({ refuse: ["127.0.0.1:0"] });
  const t = await socket(k);
  const c = dones();
  t.send(new Uint8Array([1]), 0, "127.0.0.1", c.done);
  t.send(new Uint8Array([2]), 69, "127.0.0.1", c.done);
  assert.equal(k.sent.map((s) => s.datagrams), [[[2]]]);
  assert.is(c.n, 2);
});

test("close: the watch stops, the descriptor closes, what waits is dropped; every done ran once, later sends' too", async () => {
  const k = kernel({ room: 0 });
  const t = await socket(k);
  const c = dones();
  t.send(new Uint8Array([1]), 69, "127.0.0.1", c.done);
  const ring = new Uint8Array(6);
  t.sendMany!([ring.subarray(0, 2), ring.subarray(2, 4), ring.subarray(4, 6)], 69, "127.0.0.1", c.done);
  assert.is(c.n, 4);
  t.close();
  assert.ok(k.state.stopped);
  assert.equal(k.state.closed, [7]);
  assert.is(c.n, 4, "every datagram's done, once");
  t.send(new Uint8Array([2]), 69, "127.0.0.1", c.done);
  assert.is(c.n, 5);
  k.state.room = Infinity;
  k.wake(true, true); // a report already on its way: ignored
  assert.is(k.sent.length, 0);
});

test("a WebAssembly memory that grows while answers wait: the bytes that leave are the ones sent", async () => {
  const k = kernel();
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16 });
  await socket(k, (t, data, address, port) => {
    const ring = new Uint8Array(memory.buffer, data[0] * 8, 8);
    ring.fill(data[0]);
    // Sending may free ring space that the core then grows the memory for (core/arena.ts): the view detaches.
    t.sendMany!([ring.subarray(0, 4), ring.subarray(4, 8)], port, address, () => memory.grow(1));
  });
  k.inbox.push({ data: [1], address: "127.0.0.1", port: 1 }, { data: [2], address: "127.0.0.1", port: 2 });
  k.wake(true);
  assert.is(memory.buffer.byteLength, 5 * 65536, "the memory did not grow once per datagram sent");
  assert.equal(k.sent.map((s) => s.datagrams), [[[1, 1, 1, 1], [1, 1, 1, 1]], [[2, 2, 2, 2], [2, 2, 2, 2]]]);
});

test("answers still waiting for writability when their wake-up ends keep their bytes through the next wake-ups", async () => {
  const k = kernel({ room: 1 });
  await socket(k, (t, data, address, port) => t.send(new Uint8Array([data[0] + 100, data[0]]), port, address, () => {}));
  const wake = (...values: number[]) => {
    k.inbox.push(...values.map((v) => ({ data: [v], address: "127.0.0.1", port: 7000 + v })));
    k.wake(true);
  };
  wake(1, 2, 3); // 101 goes, 102 and 103 wait
  wake(4, 5); // all wait behind them: the staging buffer starts over under these
  wake(6, 7);
  assert.equal(k.sent.map((s) => s.datagrams), [[[101, 1]]]);
  k.state.room = Infinity;
  k.wake(false, true);
  assert.equal(k.sent.flatMap((s) => s.datagrams), [1, 2, 3, 4, 5, 6, 7].map((v) => [v + 100, v]));
  assert.equal(k.sent.flatMap((s) => s.to), [1, 2, 3, 4, 5, 6, 7].map((v) => `127.0.0.1:${7000 + v}`));
});

test("a wake-up whose answers outgrow the staging buffer: every answer leaves whole and in order", async () => {
  const k = kernel();
  const size = 60_000; // 40 of them: more than the megabyte the wake-up's copies share
  await socket(k, (t, data, address, port) => {
    const ring = new Uint8Array(size).fill(data[0]);
    t.send(ring, port, address, () => ring.fill(0)); // the sender's bytes change once done ran
  });
  for (let i = 1; i <= 40; i++) k.inbox.push({ data: [i], address: "127.0.0.1", port: 8000 + i });
  k.wake(true);
  const sent = k.sent.flatMap((s) => s.datagrams);
  assert.is(sent.length, 40);
  sent.forEach((d, i) => {
    assert.is(d.length, size);
    assert.ok(d.every((x) => x === i + 1), `answer ${i + 1} was overwritten`);
  });
});

test("a window the kernel will not cut (a segment over the path's MTU) goes one datagram at a time, and the next at that size skips GSO", async () => {
  const k = kernel({ gsoLimit: 2 });
  const t = await socket(k);
  const ring = new Uint8Array([1, 1, 1, 2, 2, 2, 3, 3]);
  const window = () => [ring.subarray(0, 3), ring.subarray(3, 6), ring.subarray(6, 8)];
  t.sendMany!(window(), 69, "127.0.0.1", () => {});
  assert.equal(k.sent.map((s) => [s.call, s.datagrams]), [["sendmmsg", [[1, 1, 1]]], ["sendmmsg", [[2, 2, 2]]], ["sendmmsg", [[3, 3]]]]);
  t.sendMany!(window(), 69, "127.0.0.1", () => {});
  assert.is(k.sent.length, 6);
  assert.is(k.state.gsoTries, 1, "GSO was tried again at a size the kernel refused");
});

test("a handler that throws: the other datagrams of the wake-up are handled and answered, and the error surfaces", async () => {
  const k = kernel();
  let handled = 0;
  await socket(k, (t, data, address, port) => {
    handled++;
    if (data[0] === 1) throw new Error("handler bug");
    t.send(new Uint8Array([data[0]]), port, address, () => {});
  });
  k.inbox.push({ data: [1], address: "127.0.0.1", port: 1 }, { data: [2], address: "127.0.0.1", port: 2 });
  const errors = microtaskErrors(() => k.wake(true));
  assert.is(handled, 2);
  assert.equal(k.sent.map((s) => s.datagrams), [[[2]]]);
  assert.is(errors.length, 1);
  assert.match(String(errors[0]), /handler bug/);
});

test("a socket closed while its wake-up is handled takes no more of the batch", async () => {
  const k = kernel();
  let handled = 0;
  await socket(k, (t) => {
    handled++;
    t.close();
  });
  k.inbox.push({ data: [1], address: "127.0.0.1", port: 1 }, { data: [2], address: "127.0.0.1", port: 2 });
  k.wake(true);
  assert.is(handled, 1);
});

test("names that are no IP literal (or a zone by interface name), and a shared listening socket, stay the runtime's", async () => {
  const k = kernel();
  const used: string[] = [];
  const base = { bind: (h: string, p: number) => (used.push(`${h}:${p}`), Promise.resolve({} as DatagramTransport)) } as unknown as Runtime;
  await nativeSockets(base, k.native, false).bind("localhost", 0, () => {}, 516);
  await nativeSockets(base, k.native, false).bind("fe80::1%eth0", 0, () => {}, 516);
  await nativeSockets(base, k.native, false).bind("fe80::1%2", 0, () => {}, 516);
  await nativeSockets(base, k.native, true).bind("127.0.0.1", 69, () => {});
  await nativeSockets(base, k.native, true).bind("127.0.0.1", 0, () => {}, 516);
  assert.equal(used, ["localhost:0", "fe80::1%eth0:0", "127.0.0.1:69"]);
});

// The real thing on loopback: 30 clients in one burst against --single-port, where every transfer's
// ACKs reach one socket. Each wake-up must drain several of them, and their answers leave together.
test("single-port on Node's own sockets: a burst of clients is read and answered in batches, every byte intact", async () => {
  const rt = await loadRuntime();
  const own = runtimeName() === "node" && rt.datagramPath?.detail.includes("recvmmsg");
  if (!own) {
    // Other runtimes, and Node without koffi or with EMMER_NATIVE=off: no recvmmsg path to check.
    if (runtimeName() === "node" && process.env.CI === "true" && process.env.EMMER_NATIVE !== "off") assert.unreachable(`CI's Node must have the batch path: ${rt.datagramPath?.detail}`);
    return;
  }
  const body = bytesOf(40_000, 7);
  const app = new Emmer({ hostname: "127.0.0.1", port: 0, singlePort: true, maxRequestsPerSecond: 1000 });
  app.read("f", () => body);
  await app.listen();
  const before = { ...batchStats };
  try {
    const clients = Array.from({ length: 30 }, () => new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 2000 }).get("f"));
    for (const { data } of await Promise.all(clients)) assert.equal(data, body);
    const received = batchStats.recvmmsgDatagrams - before.recvmmsgDatagrams, calls = batchStats.recvmmsgCalls - before.recvmmsgCalls;
    const sent = batchStats.sendmmsgDatagrams - before.sendmmsgDatagrams, sends = batchStats.sendmmsgCalls - before.sendmmsgCalls;
    // 30 transfers of 79 blocks: every ACK came in by recvmmsg, every DATA went out by sendmmsg.
    assert.ok(received >= 30 * 79, `received ${received}`);
    assert.ok(sent >= 30 * 79, `sent ${sent}`);
    assert.ok(received / calls > 1.5, `${received} datagrams in ${calls} recvmmsg calls: no batching`);
    assert.ok(sent / sends > 1.5, `${sent} datagrams in ${sends} sendmmsg calls: no batching`);
  } finally {
    await app.close();
  }
});

test.run();
