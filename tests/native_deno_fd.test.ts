// How Deno's GSO path finds the descriptor of a socket Deno.listenDatagram made
// (adapters/native/deno_fd.ts): against a scripted descriptor table, every runtime; and on
// Deno with the FFI, against the kernel's.
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { type DescriptorCalls, DescriptorFinder } from "../adapters/native/deno_fd.ts";
import { writeSockaddr } from "../adapters/native/sockaddr.ts";
import { runtimeName } from "../adapters/runtime.ts";

interface Entry {
  family: 4 | 6;
  address: string;
  port: number;
  type?: number; // SO_TYPE: 2 datagram (default), 1 stream
  protocol?: number; // SO_PROTOCOL: 17 UDP (default)
}

/** A descriptor table: numbers to sockets (absent: not a socket, getsockname fails). */
function table(entries: Record<number, Entry>, { listable = true } = {}) {
  const looked: number[] = [];
  const calls: DescriptorCalls = {
    dup: () => {
      let fd = 0;
      while (fd in entries || fd === 99) fd++;
      return fd;
    },
    close: () => 0,
    anchor: () => 99,
    getsockname(fd, sa) {
      looked.push(fd);
      const e = entries[fd];
      if (!e) return -1;
      writeSockaddr(new DataView(sa.buffer, sa.byteOffset, sa.byteLength), 0, e.family, e.address, e.port);
      return 0;
    },
    getsockopt(fd, _level, name, value) {
      const e = entries[fd];
      if (!e) return -1;
      new DataView(value.buffer, value.byteOffset).setInt32(0, name === 3 ? e.type ?? 2 : e.protocol ?? 17, true);
      return 0;
    },
    listOpen: () => (listable ? Object.keys(entries).map(Number) : []),
  };
  return { calls, looked };
}

test("the lowest free descriptor, taken as Deno's socket's when it is bound where Deno says", () => {
  const { calls, looked } = table({ 0: { family: 4, address: "0.0.0.0", port: 1 }, 1: { family: 4, address: "127.0.0.1", port: 69 } });
  const finder = new DescriptorFinder(calls);
  assert.is(finder.lowestFree(), 2);
  // Deno's socket then took 2.
  const { calls: after, looked: seen } = table({ 1: { family: 4, address: "127.0.0.1", port: 69 }, 2: { family: 4, address: "127.0.0.1", port: 40000 } });
  assert.is(new DescriptorFinder(after).find(4, "127.0.0.1", 40000, 2), 2);
  assert.equal(seen, [2], "the expected descriptor is the only one asked");
  assert.equal(looked, []);
});

test("another thread took the expected descriptor: a nearby one, or the whole table, is searched", () => {
  const entries: Record<number, Entry> = {
    5: { family: 4, address: "127.0.0.1", port: 5000 }, // someone else's socket in the expected place
    7: { family: 6, address: "::1", port: 40001 },
    200: { family: 4, address: "127.0.0.1", port: 40002 },
  };
  const finder = new DescriptorFinder(table(entries).calls);
  assert.is(finder.find(6, "::1", 40001, 5), 7);
  assert.is(finder.find(4, "127.0.0.1", 40002, 5), 200, "beyond the nearby ones: found in the table");
  assert.is(new DescriptorFinder(table(entries, { listable: false }).calls).find(4, "127.0.0.1", 40002, 5), -1, "no table: not found");
});

test("only a UDP socket bound to that address, family and port matches", () => {
  const entries: Record<number, Entry> = {
    3: { family: 4, address: "127.0.0.1", port: 40000, type: 1 }, // TCP on the same port number
    4: { family: 4, address: "127.0.0.2", port: 40000 },
    5: { family: 6, address: "::1", port: 40000 },
    6: { family: 4, address: "127.0.0.1", port: 40000, protocol: 1 }, // an ICMP datagram socket
  };
  const finder = new DescriptorFinder(table(entries).calls);
  assert.is(finder.find(4, "127.0.0.1", 40000, 3), -1);
  entries[9] = { family: 4, address: "127.0.0.1", port: 40000 };
  assert.is(finder.find(4, "127.0.0.1", 40000, 3), 9);
  // The same socket named in other spellings of its address.
  entries[10] = { family: 6, address: "::", port: 40003 };
  assert.is(finder.find(6, "0:0::0", 40003, -1), 10);
});

test("on Deno: the descriptor found is the socket Deno.listenDatagram made", async () => {
  if (runtimeName() !== "deno") return;
  const { loadNative } = await import("../adapters/native/detect.ts");
  const { native, detection } = await loadNative();
  if (native === null) {
    assert.ok(process.env.CI !== "true" || process.env.EMMER_NATIVE === "off", `no FFI on Deno in CI: ${detection.reason}`);
    return;
  }
  const { descriptors } = native.libc as import("../adapters/native/deno_ffi.ts").DenoLibc;
  type Conn = { addr: { hostname: string; port: number }; receive(): Promise<[Uint8Array, { port: number }]>; close(): void };
  const D = (globalThis as unknown as { Deno: { listenDatagram(o: object): Conn } }).Deno;
  const conns: Conn[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1", "127.0.0.1"]) {
      const expected = descriptors.lowestFree();
      const conn = D.listenDatagram({ hostname, port: 0, transport: "udp" });
      conns.push(conn);
      const fd = descriptors.find(hostname.includes(":") ? 6 : 4, conn.addr.hostname, conn.addr.port, expected);
      assert.ok(fd >= 0, `no descriptor for ${hostname}`);
      // What libc sends from it, Deno's socket receives: the descriptor is that socket.
      const got = conn.receive();
      const r = native.sendmmsg(fd, [{ data: new Uint8Array([conns.length]), address: conn.addr.hostname, port: conn.addr.port }]);
      assert.equal(r, { sent: 1, errno: 0 });
      const [data, from] = await got;
      assert.equal([...data], [conns.length]);
      // Sent *from* that descriptor: its source port is Deno's socket's own (any socket could send *to* it).
      assert.is(from.port, conn.addr.port);
    }
  } finally {
    for (const c of conns) c.close();
  }
});

test.run();
