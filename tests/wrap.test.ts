// Sizes exactly at the 16-bit block number's wrap, on real loopback sockets with
// blksize 8 (so the files are ~512 KiB): 65535 x 8 - 1 bytes end in block 65535,
// 65535 x 8 bytes need an empty 65536th block, and 65535 x 8 + 1 bytes put their
// last byte in the 65536th. Each is read and uploaded with TftpClient (lock-step
// and windowed), read by real clients (curl, atftp), and read with the server's
// rollover to 1 (the block after 65535 is 1, not 0) by a minimal client here that
// records the block numbers it is sent (curl and atftp both expect 0 after 65535:
// they stall on a 1). Every file is compared byte for byte. tftp-hpa's client sends
// no options (blksize 512 only) and busybox refuses "-b 8", so neither reads here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Emmer, TftpClient, type TransferEvent } from "../mod.ts";
import { loadRuntime } from "../adapters/runtime.ts";
import { failed, get, hasPeer, type Peer } from "./support/peers.ts";
import { testNeeding } from "./support/needs.ts";
import { within } from "./support/raw.ts";
import { bytesOf } from "./support/session_driver.ts";

const BLKSIZE = 8;
const WRAP = 65535 * BLKSIZE;
/** [name, size, DATA blocks the transfer takes (the last one short, maybe empty)] */
const SIZES: [string, number, number][] = [
  ["65535 x 8 - 1", WRAP - 1, 65535],
  ["65535 x 8", WRAP, 65536],
  ["65535 x 8 + 1", WRAP + 1, 65536],
];
const bodies = new Map(SIZES.map(([, size], i) => [String(size), bytesOf(size, 40 + i)]));

let app: Emmer;
let port = 0;
let top = "";
const uploads = new Map<string, Uint8Array>();
/** Resolvers for the transfer event of each file name, set before the transfer starts. */
const waiting = new Map<string, (e: TransferEvent) => void>();
/**
 * The server's event for the next transfer of `name`: a client that has its last block may be
 * done while the server has not taken its last ACK (the one numbered after the wrap).
 */
const ended = (name: string) => {
  const event = new Promise<TransferEvent>((resolve) => waiting.set(name, resolve));
  return async () => {
    const e = await within(await loadRuntime(), event, 15_000, `the server's event for ${name}`);
    return [e.outcome, e.bytes, e.blocks];
  };
};

test.before(async () => {
  top = await mkdtemp(join(tmpdir(), "emmer-wrap-"));
  app = new Emmer({
    port: 0,
    onError: () => {},
    drainTimeout: 500,
    onTransfer: (e) => waiting.get(e.filename)?.(e),
    // Names under rollover1/ are served with the block after 65535 numbered 1.
    optionLimits: ({ filename }) => (filename.startsWith("rollover1/") ? { rollover: 1 } : undefined),
  });
  app.read("*", ({ filename }) => bodies.get(filename.split("/").pop()!) ?? null);
  app.write("*", async ({ filename, body }) => {
    uploads.set(filename, new Uint8Array(await new Response(body).arrayBuffer()));
  });
  await app.listen();
  port = app.address!.port;
});

test.after(async () => {
  await app.close();
  await rm(top, { recursive: true, force: true });
});

const client = () => new TftpClient("127.0.0.1", port, { timeoutMs: 1000, retries: 5 });

for (const [what, size, blocks] of SIZES) {
  const body = bodies.get(String(size))!;
  for (const windowsize of [1, 16]) {
    const how = windowsize === 1 ? "lock-step" : `windowsize ${windowsize}`;
    test(`TftpClient reads ${what} bytes (${how}): identical, ${blocks} blocks acknowledged`, async () => {
      const server = ended(String(size));
      const got = await client().get(String(size), { blksize: BLKSIZE, windowsize, tsize: true });
      assert.is(got.data.length, size);
      assert.ok(got.data.every((b, i) => b === body[i]), "the bytes differ");
      assert.equal(got.oack, { blksize: "8", tsize: String(size), windowsize: String(windowsize) });
      assert.equal(await server(), ["ok", size, blocks], "the server's outcome, bytes and blocks");
    });

    test(`TftpClient uploads ${what} bytes (${how}): stored identical, ${blocks} blocks received`, async () => {
      const name = `up-${size}-${windowsize}`;
      const server = ended(name);
      await client().put(name, body, { blksize: BLKSIZE, windowsize, tsize: true });
      const stored = uploads.get(name);
      assert.is(stored?.length, size);
      assert.ok(stored!.every((b, i) => b === body[i]), "the stored bytes differ");
      assert.equal(await server(), ["ok", size, blocks], "the server's outcome, bytes and blocks");
    });
  }

  for (const peer of ["curl", "atftp"] as Peer[]) {
    testNeeding(`${peer} reads ${what} bytes with blksize 8: identical, and the server has its last ACK`, { [peer]: hasPeer(peer) }, async () => {
      const local = join(top, `${peer}-${size}`);
      const server = ended(String(size));
      const r = await get(peer, { host: "127.0.0.1", port, remote: String(size), local, blksize: BLKSIZE, timeoutMs: 60_000 });
      assert.not.ok(failed(peer, r), `${peer} failed: exit ${r.code} ${r.stdout} ${r.stderr}`);
      const got = new Uint8Array(await readFile(local));
      assert.is(got.length, size);
      assert.ok(got.every((b, i) => b === body[i]), "the bytes differ");
      assert.equal(await server(), ["ok", size, blocks], "the server's outcome, bytes and blocks");
    });
  }
}

/**
 * A lock-step reader that trusts nothing about numbering: a DATA whose block differs from
 * the last one acknowledged is the next block. Returns the file and the block numbers in order.
 */
async function rawRead(filename: string, options: Record<string, string>): Promise<{ data: Uint8Array; blocks: number[] }> {
  const runtime = await loadRuntime();
  const inbox: { data: Uint8Array; port: number }[] = [];
  let wake: (() => void) | null = null;
  const socket = await runtime.bind("127.0.0.1", 0, (data, _a, from) => (inbox.push({ data: data.slice(), port: from }), wake?.()));
  const next = async (what: string) => {
    if (inbox.length === 0) await within(runtime, new Promise<void>((r) => (wake = r)), 5000, what);
    return inbox.shift()!;
  };
  const enc = new TextEncoder();
  const ack = (block: number, to: number) => socket.send(Uint8Array.of(0, 4, block >> 8, block & 255), to, "127.0.0.1", () => {});
  try {
    const fields = [filename, "octet", ...Object.entries(options).flat()];
    socket.send(Uint8Array.from([0, 1, ...fields.flatMap((f) => [...enc.encode(f), 0])]), port, "127.0.0.1", () => {});
    let m = await next("the first answer");
    const tid = m.port;
    if (m.data[1] === 6) {
      ack(0, tid);
      m = await next("DATA 1");
    }
    const chunks: Uint8Array[] = [];
    const blocks: number[] = [];
    let last = 0;
    for (;;) {
      assert.is(m.data[1], 3, `DATA expected after block ${last}, got opcode ${m.data[1]}`);
      const block = (m.data[2] << 8) | m.data[3];
      ack(block, tid);
      if (block !== last) {
        last = block;
        blocks.push(block);
        chunks.push(m.data.subarray(4));
        if (m.data.length - 4 < BLKSIZE) break;
      }
      m = await next(`the DATA after block ${last}`);
    }
    const data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (data.set(c, at), at + c.length), 0);
    return { data, blocks };
  } finally {
    socket.close();
  }
}

/** 1, 2, ..., 65535, then `after`, after + 1, ... for `count` blocks in all. */
const numbering = (count: number, after: number) => Array.from({ length: count }, (_, i) => (i < 65535 ? i + 1 : after + i - 65535));

for (const [what, size, blocks] of SIZES) {
  const body = bodies.get(String(size))!;
  for (const [how, name, options, after] of [
    ["by default", String(size), { blksize: "8" }, 0],
    ["with the server's rollover 1 (a per-request limit)", `rollover1/${size}`, { blksize: "8" }, 1],
    ["when the client asks rollover=1", String(size), { blksize: "8", rollover: "1" }, 1],
    ["when the client asks rollover=0 from a rollover-1 name", `rollover1/${size}`, { blksize: "8", rollover: "0" }, 0],
  ] as [string, string, Record<string, string>, number][]) {
    test(`a read of ${what} bytes, ${how}: blocks 1..65535${blocks > 65535 ? ` then ${after}` : ""}, bytes identical`, async () => {
      const server = ended(name);
      const got = await rawRead(name, options);
      assert.equal(got.blocks.length, blocks);
      assert.equal(got.blocks.slice(65530), numbering(blocks, after).slice(65530), "the block numbers at the wrap");
      assert.equal(got.blocks, numbering(blocks, after));
      assert.is(got.data.length, size);
      assert.ok(got.data.every((b, i) => b === body[i]), "the bytes differ");
      assert.equal(await server(), ["ok", size, blocks], "the server's outcome, bytes and blocks");
    });
  }
}

test.run();
