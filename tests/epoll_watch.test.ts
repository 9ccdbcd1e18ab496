// Many descriptors watched through one epoll set (adapters/native/epoll_watch.ts): against a
// scripted kernel, who is called for which event, what a stop or a new socket in the middle of a
// wake-up does, that writability is asked for and dropped, that the runtime's one handle goes
// when nothing is watched (or it would keep the process alive); then on Node with koffi, real
// sockets and a real process that must exit by itself.
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DIRECT, type EpollCalls, epollWatcher, eventLayout, type EventLayout } from "../adapters/native/epoll_watch.ts";
import type { Watch } from "../adapters/native/libc.ts";
import { loadNative } from "../adapters/native/detect.ts";
import { ReceiveBatch } from "../adapters/native/datagrams.ts";
import { runtimeName } from "../adapters/runtime.ts";
import { microtaskErrors } from "./support/microtask_errors.ts";

const EPOLLIN = 1, EPOLLOUT = 4, EPOLLERR = 8, EPOLLHUP = 16;

/**
 * An epoll set: registrations by descriptor, and the events the next epoll_wait returns. The
 * runtime's handles: on the set's descriptor (50), and on the first `direct` sockets.
 */
function kernel(layout: EventLayout, direct = 0, firstId = 1) {
  const set = new Map<number, { mask: number; data: number }>();
  const calls: string[] = [];
  let ready: [fd: number, mask: number][] = [];
  const read = (event: Uint8Array) => {
    const v = new DataView(event.buffer, event.byteOffset);
    return { mask: v.getUint32(0, true), data: v.getUint32(layout.data, true) + v.getUint32(layout.data + 4, true) * 2 ** 32 };
  };
  const epoll: EpollCalls = {
    create: () => 50,
    ctl(_epfd, op, fd, event) {
      calls.push(`${["", "add", "del", "mod"][op]} ${fd}${op === 2 ? "" : ` ${read(event).mask}`}`);
      if (op === 1) set.set(fd, read(event));
      else if (op === 2) set.delete(fd);
      else set.set(fd, read(event));
      return 0;
    },
    wait(_epfd, events, max) {
      const v = new DataView(events.buffer, events.byteOffset);
      const out = ready.filter(([fd]) => set.has(fd)).slice(0, max);
      out.forEach(([fd, mask], i) => {
        v.setUint32(i * layout.size, mask, true);
        const data = set.get(fd)!.data;
        v.setUint32(i * layout.size + layout.data, data % 2 ** 32, true);
        v.setUint32(i * layout.size + layout.data + 4, Math.floor(data / 2 ** 32), true);
      });
      ready = [];
      return out.length;
    },
    errno: () => 0,
  };
  const runtime = { watches: 0, stops: 0, fire: (_readable: boolean) => {}, own: [] as string[] };
  const watchOne = (fd: number, onReady: (readable: boolean, writable: boolean) => void): Watch => {
    if (fd !== 50) {
      runtime.own.push(`watch ${fd}`);
      return { writable: (on) => void runtime.own.push(`writable ${fd} ${on}`), stop: () => void runtime.own.push(`stop ${fd}`) };
    }
    runtime.watches++;
    runtime.fire = (readable) => onReady(readable, false);
    return { writable: () => assert.unreachable("the epoll descriptor is only read"), stop: () => void runtime.stops++ };
  };
  return {
    watch: epollWatcher(epoll, layout, watchOne, direct, firstId),
    calls,
    runtime,
    /** The kernel reports these descriptors ready; the runtime's handle fires. */
    wake(...events: [fd: number, mask: number][]) {
      ready = events;
      runtime.fire(true);
    },
  };
}

test("struct epoll_event: packed on x86_64 (data at 4 of 12 bytes), aligned on aarch64 (at 8 of 16)", () => {
  assert.equal(eventLayout("x64"), { size: 12, data: 4 });
  assert.equal(eventLayout("arm64"), { size: 16, data: 8 });
});

for (const arch of ["x64", "arm64"]) {
  test(`${arch}: one runtime handle for every socket; a wake-up calls each ready socket once, with its events`, () => {
    const k = kernel(eventLayout(arch));
    const seen: string[] = [];
    for (const fd of [7, 8, 9]) k.watch(fd, (r, w) => seen.push(`${fd}:${r}:${w}`));
    assert.is(k.runtime.watches, 1);
    k.wake([9, EPOLLIN], [7, EPOLLIN | EPOLLOUT], [8, EPOLLOUT]);
    assert.equal(seen, ["9:true:false", "7:true:true", "8:false:true"]);
  });
}

test("the first sockets watched at a time get runtime handles of their own; the set takes the ones beyond, and a freed place is reused", () => {
  const k = kernel(eventLayout("x64"), 2);
  const a = k.watch(7, () => {});
  k.watch(8, () => {});
  assert.is(k.runtime.watches, 0, "the set was made for two sockets");
  const seen: number[] = [];
  k.watch(9, () => seen.push(9));
  assert.is(k.runtime.watches, 1);
  assert.equal(k.calls, ["add 9 1"]);
  a.writable(true);
  a.stop();
  a.stop();
  k.watch(10, () => {});
  assert.equal(k.runtime.own, ["watch 7", "watch 8", "writable 7 true", "stop 7", "watch 10"]);
  assert.equal(k.calls, ["add 9 1"], "a socket went to the set while a place of its own was free");
  k.wake([9, EPOLLIN]);
  assert.equal(seen, [9]);
});

test("registrations numbered past 2^32 (a long uptime) are still told apart and called", () => {
  const k = kernel(eventLayout("arm64"), 0, 2 ** 32 - 1);
  const seen: number[] = [];
  k.watch(7, () => seen.push(7)); // 2^32 - 1
  k.watch(8, () => seen.push(8)); // 2^32: 0 in the low half
  k.watch(9, () => seen.push(9)); // 2^32 + 1: 1 in the low half
  k.wake([9, EPOLLIN], [8, EPOLLIN], [7, EPOLLIN]);
  assert.equal(seen, [9, 8, 7]);
});

test("a runtime handle on the set that cannot be made leaves nothing registered", () => {
  const calls: string[] = [];
  const epoll: EpollCalls = { create: () => 50, ctl: (_e, op, fd) => (calls.push(`${op} ${fd}`), 0), wait: () => 0, errno: () => 0 };
  let fail = true;
  let live = 0;
  const watch = epollWatcher(epoll, eventLayout("x64"), () => {
    if (fail) throw new Error("uv_poll_init: ENOMEM");
    live++;
    return { writable() {}, stop: () => void live-- };
  }, 0);
  assert.throws(() => watch(7, () => {}), /ENOMEM/);
  assert.equal(calls, [], "the socket was added to the set without a handle to report it");
  fail = false;
  const w = watch(8, () => {});
  w.stop();
  assert.is(live, 0, "the set's handle outlived its last socket");
});

test("an error or hang-up is reported as readable: the read that follows meets it", () => {
  const k = kernel(eventLayout("x64"));
  const seen: boolean[] = [];
  k.watch(7, (r) => seen.push(r));
  k.watch(8, (r) => seen.push(r));
  k.wake([7, EPOLLERR], [8, EPOLLHUP]);
  assert.equal(seen, [true, true]);
});

test("a socket stopped during a wake-up is not called for its event there, nor is a new socket that took its number", () => {
  const k = kernel(eventLayout("x64"));
  const seen: string[] = [];
  k.watch(7, () => {
    seen.push("7");
    w8.stop(); // socket 8 is closed by the transfer on 7 ...
    k.watch(8, () => seen.push("new 8")); // ... and a new socket gets descriptor 8
  });
  const w8 = k.watch(8, () => seen.push("old 8"));
  k.wake([7, EPOLLIN], [8, EPOLLIN]);
  assert.equal(seen, ["7"]);
  assert.equal(k.calls, ["add 7 1", "add 8 1", "del 8", "add 8 1"]);
  k.wake([8, EPOLLIN]);
  assert.equal(seen, ["7", "new 8"]);
});

test("writability is asked for and dropped per socket; a stopped socket asks nothing", () => {
  const k = kernel(eventLayout("arm64"));
  const w = k.watch(7, () => {});
  w.writable(true);
  w.writable(false);
  w.stop();
  w.writable(true);
  w.stop();
  assert.equal(k.calls, ["add 7 1", `mod 7 ${EPOLLIN | EPOLLOUT}`, "mod 7 1", "del 7"]);
});

test("when nothing is watched the runtime's handle goes (it would keep the process alive), and comes back for the next socket", () => {
  const k = kernel(eventLayout("x64"));
  const a = k.watch(7, () => {});
  const b = k.watch(8, () => {});
  a.stop();
  assert.is(k.runtime.stops, 0);
  b.stop();
  assert.is(k.runtime.stops, 1);
  const seen: number[] = [];
  k.watch(9, () => seen.push(9));
  assert.is(k.runtime.watches, 2);
  k.wake([9, EPOLLIN]);
  assert.equal(seen, [9]);
});

test("a socket whose handler throws: the others of the wake-up are still called, and the error surfaces", () => {
  const k = kernel(eventLayout("x64"));
  const seen: number[] = [];
  k.watch(7, () => {
    throw new Error("handler bug");
  });
  k.watch(8, () => seen.push(8));
  const errors = microtaskErrors(() => k.wake([7, EPOLLIN], [8, EPOLLIN]));
  assert.equal(seen, [8]);
  assert.is(errors.length, 1);
  assert.match(String(errors[0]), /handler bug/);
});

// The real thing: Node's koffi watches every socket of the module through one epoll set.
const { native } = await loadNative();
const koffiHere = runtimeName() === "node" && native?.libc.ffi === "koffi";
const CI = process.env.CI === "true";

test("koffi: 40 sockets, a datagram to each, every one read; all stopped and closed, the process exits by itself", () => {
  if (!koffiHere) {
    if (CI && runtimeName() === "node" && process.env.EMMER_NATIVE !== "off") assert.unreachable("CI's Node must have koffi");
    return;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const script = `
    import { loadNative } from ${JSON.stringify(join(here, "..", "adapters", "native", "detect.ts"))};
    import { ReceiveBatch } from ${JSON.stringify(join(here, "..", "adapters", "native", "datagrams.ts"))};
    const { native: n } = await loadNative();
    const batch = new ReceiveBatch(8, 64);
    const sockets = Array.from({ length: 40 }, () => n.openUdp("127.0.0.1", 0));
    const got = new Set();
    const watches = sockets.map((s, i) => n.libc.watch(s.fd, (readable) => {
      if (!readable) return;
      const r = n.recvmmsg(s.fd, batch);
      for (let j = 0; j < r.received; j++) if (batch.datagram(j)[0] === i) got.add(i);
      if (got.size === sockets.length) {
        watches.forEach((w) => w.stop());
        sockets.forEach((x) => n.close(x.fd));
        console.log("read " + got.size);
      }
    }));
    n.sendmmsg(sockets[0].fd, sockets.map((s, i) => ({ data: new Uint8Array([i]), address: "127.0.0.1", port: s.port })));
  `;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: join(here, ".."), timeout: 15_000, encoding: "utf8" });
  assert.is(r.signal, null, `the process did not exit by itself: ${r.stdout} ${r.stderr}`);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /read 40/);
});

/** Idle sockets that take the places of their own: the next socket watched goes to the epoll set. */
function fillers(): () => void {
  const n = native!;
  const idle = Array.from({ length: DIRECT }, () => n.openUdp("127.0.0.1", 0));
  const watches = idle.map((s) => n.libc.watch!(s.fd, () => assert.unreachable("an idle socket was reported")));
  return () => {
    watches.forEach((w) => w.stop());
    idle.forEach((s) => n.close(s.fd));
  };
}

test("koffi: a socket in the epoll set is reported again while datagrams are left (level-triggered)", async () => {
  if (!koffiHere) return;
  const n = native!;
  const s = n.openUdp("127.0.0.1", 0);
  const batch = new ReceiveBatch(2, 64); // takes 2 per wake-up: 5 queued need 3 wake-ups, level-triggered
  const got: number[] = [];
  let watch: Watch = { writable() {}, stop() {} };
  const done = fillers();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${got} in 5 s`)), 5000);
      watch = n.libc.watch!(s.fd, (readable) => {
        if (!readable) return;
        const r = n.recvmmsg(s.fd, batch);
        for (let i = 0; i < r.received; i++) got.push(batch.datagram(i)[0]);
        if (got.length >= 5) clearTimeout(timer), resolve();
      });
      n.sendmmsg(s.fd, [1, 2, 3, 4, 5].map((x) => ({ data: new Uint8Array([x]), address: "127.0.0.1", port: s.port })));
    });
    assert.equal(got, [1, 2, 3, 4, 5]);
  } finally {
    watch.stop();
    n.close(s.fd);
    done();
  }
});

test("koffi: writability of a socket in the epoll set is reported only while asked for", async () => {
  if (!koffiHere) return;
  const n = native!;
  const s = n.openUdp("127.0.0.1", 0);
  const batch = new ReceiveBatch(4, 64);
  let next: (report: string) => void = () => assert.unreachable("a report nobody waited for");
  const report = () => new Promise<string>((resolve) => (next = resolve));
  const toSelf = () => n.sendmmsg(s.fd, [{ data: new Uint8Array([1]), address: "127.0.0.1", port: s.port }]);
  const done = fillers();
  const watch = n.libc.watch!(s.fd, (readable, writable) => {
    if (readable) n.recvmmsg(s.fd, batch);
    if (writable) watch.writable(false); // as NativeUdp does once it has flushed
    next(`${readable}:${writable}`);
  });
  try {
    let r = report();
    toSelf();
    assert.is(await r, "true:false", "writability reported without being asked for");
    r = report();
    watch.writable(true);
    assert.is(await r, "false:true"); // room in the send buffer: at once
    r = report();
    toSelf();
    assert.is(await r, "true:false", "writability still reported after it was dropped");
  } finally {
    watch.stop();
    n.close(s.fd);
    done();
  }
});

test.run();
