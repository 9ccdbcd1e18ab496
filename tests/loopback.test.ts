// The public API (mod.ts) on real UDP sockets on 127.0.0.1: routes, every kind
// of body, errors from handlers, uploads and their verdicts, limits.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Emmer, type EmmerOptions, TftpClient, TftpError } from "../mod.ts";
import { bytesOf } from "./support/session_driver.ts";
import { loadRuntime } from "../adapters/runtime.ts";
import { type Answer, rawExchange, rawRequest, within } from "./support/raw.ts";

async function server(setup: (app: Emmer) => void, options: EmmerOptions = {}) {
  const errors: unknown[] = [];
  const app = new Emmer({ port: 0, drainTimeout: 300, onError: (e) => errors.push(e), ...options });
  setup(app);
  await app.listen();
  const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 500, retries: 3 });
  return { app, client, errors, port: app.address!.port };
}

async function rejects(p: Promise<unknown>, code: number, message?: string) {
  try {
    await p;
  } catch (e) {
    assert.instance(e, TftpError);
    assert.is((e as TftpError).code, code, `ERROR ${(e as TftpError).code} ${(e as Error).message}`);
    if (message !== undefined) assert.is((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected ERROR ${code}`);
}

const body = bytesOf(100_000, 5);
const text = new TextDecoder();

const bodies: [string, () => unknown, boolean][] = [
  ["string", () => "x".repeat(1000) + "é", true],
  ["Uint8Array", () => body, true],
  ["ArrayBuffer", () => body.slice().buffer, true],
  ["Blob", () => new Blob([body]), true],
  ["ReadableStream", () => new Blob([body]).stream(), false],
  ["async generator", async function* () {
    for (let i = 0; i < body.length; i += 777) yield body.subarray(i, i + 777);
  }, false],
  ["Response with Content-Length", () => new Response(body, { headers: { "content-length": String(body.length) } }), true],
  ["{ body: stream, size }", () => ({ body: new Blob([body]).stream(), size: body.length }), true],
];

for (const [name, make, sized] of bodies) {
  test(`a read handler returning ${name} is served${sized ? ", with tsize" : ""}`, async () => {
    const { app, client } = await server((app) => app.read("f", make as () => never));
    try {
      const expected = name === "string" ? new TextEncoder().encode("x".repeat(1000) + "é") : body;
      const r = await client.get("f", { blksize: 1468, tsize: true });
      assert.equal(r.data, expected);
      assert.is(r.oack?.tsize, sized ? String(expected.length) : undefined);
    } finally {
      await app.close();
    }
  });
}

for (const [what, declared, actual] of [["longer", 1000, 5000], ["shorter", 5000, 1000]] as const) {
  test(`a body ${what} than the size its handler declared (the tsize told) fails with ERROR 0, and the operator is told`, async () => {
    const { app, client, errors } = await server((app) => app.read("f", () => ({ body: new Blob([bytesOf(actual, 3)]).stream(), size: declared })));
    try {
      await rejects(client.get("f", { tsize: true }), 0, "error reading the file");
      assert.match(String(errors[0]), what === "longer" ? "longer than its declared size of 1000 bytes" : "ended at 1000 bytes, short of its declared size of 5000");
    } finally {
      await app.close();
    }
  });
}

test("routes: first match wins; named groups become params; the handler sees the client's address and port", async () => {
  let seen: { address: string; port: number } | null = null;
  const { app, client } = await server((app) => {
    app.read(/^pxelinux\.cfg\/01-(?<mac>[0-9a-f-]+)$/, ({ address, port, params }) => {
      seen = { address, port };
      return `mac=${params.mac}`;
    });
    app.read("pxelinux.cfg/*", () => "fallback");
    app.read("*", () => "any");
  });
  try {
    assert.is(text.decode((await client.get("pxelinux.cfg/01-aa-bb-cc-dd-ee-ff")).data), "mac=aa-bb-cc-dd-ee-ff");
    assert.is(seen!.address, "127.0.0.1");
    assert.ok(seen!.port > 0 && seen!.port !== app.address!.port);
    assert.is(text.decode((await client.get("pxelinux.cfg/default")).data), "fallback");
    assert.is(text.decode((await client.get("other/file")).data), "any");
  } finally {
    await app.close();
  }
});

test("handler errors: TftpError is sent as is; null is ERROR 1; a crash is ERROR 0, logged, and the server keeps serving", async () => {
  const { app, client, errors } = await server((app) => {
    app.read("denied", () => {
      throw new TftpError(2, "not for you");
    });
    app.read("null", () => null);
    app.read("crash", () => {
      throw new Error("bug in handler");
    });
    app.read("async-crash", async () => {
      await Promise.resolve();
      throw new Error("async bug");
    });
    app.read("ok", () => "fine");
  });
  try {
    await rejects(client.get("denied"), 2, "not for you");
    await rejects(client.get("null"), 1);
    await rejects(client.get("crash"), 0, "internal server error");
    await rejects(client.get("async-crash"), 0, "internal server error");
    await rejects(client.get("no-route/x"), 1);
    assert.is(errors.length, 2);
    assert.match(String(errors[0]), "bug in handler");
    assert.is(text.decode((await client.get("ok")).data), "fine");
  } finally {
    await app.close();
  }
});

test("mail mode is refused with ERROR 4; garbage on the listening port gets ERROR 4", async () => {
  const { app, port } = await server((app) => app.read("*", () => "x"));
  try {
    const mail = await rawRequest(port, [0, 1, ..."f\0mail\0"].map((c) => (typeof c === "string" ? c.charCodeAt(0) : c)));
    assert.equal([mail[1], mail[3]], [5, 4]);
    const junk = await rawRequest(port, [0, 1, 0x66]);
    assert.equal([junk[1], junk[3]], [5, 4]);
  } finally {
    await app.close();
  }
});

test("a truncated ERROR (2 or 3 bytes) is never answered, on the listening port or a transfer's", async () => {
  const { app, port } = await server((app) => app.read("f", () => body));
  const runtime = await loadRuntime();
  const answers: Answer[] = [];
  let answered: () => void = () => {};
  const peer = await runtime.bind("127.0.0.1", 0, (data, _address, from) => (answers.push({ data: data.slice(), port: from }), answered()));
  const next = (what: string) => within(runtime, new Promise<void>((resolve) => (answered = resolve)), 2000, what);
  try {
    // Datagrams from one socket reach the server in order: an answer to the short ERRORs would come
    // before the DATA 1 that answers the request sent after them.
    let got = next("DATA 1");
    peer.send(Uint8Array.from([0, 5]), port, "127.0.0.1", () => {});
    peer.send(Uint8Array.from([0, 5, 0]), port, "127.0.0.1", () => {});
    peer.send(Uint8Array.from([0, 1, ...new TextEncoder().encode("f\0octet\0")]), port, "127.0.0.1", () => {});
    await got;
    assert.equal(answers.map((a) => a.data[1]), [3], "the first answer was not DATA 1");
    // On the transfer's port too: an ERROR cut short is dropped there, and the transfer goes on.
    got = next("DATA 2");
    const transfer = answers[0].port;
    peer.send(Uint8Array.from([0, 5]), transfer, "127.0.0.1", () => {});
    peer.send(Uint8Array.from([0, 5, 0]), transfer, "127.0.0.1", () => {});
    peer.send(Uint8Array.from([0, 4, 0, 1]), transfer, "127.0.0.1", () => {});
    await got;
    assert.equal(answers.map((a) => [a.data[1], a.data[3]]), [[3, 1], [3, 2]]);
  } finally {
    peer.close();
    await app.close();
  }
});

// A PXE ROM: RRQ (tsize, blksize) -> OACK -> ERROR 8 to the transfer port and, at once, the same RRQ from
// the same port. The ERROR and the RRQ reach different sockets (one in single-port mode), in either order.
for (const singlePort of [false, true]) {
  test(`a PXE ROM's re-request after its ERROR 8 is answered, every time, in 1,000 cycles${singlePort ? " (single port)" : ""}`, async () => {
    const file = bytesOf(1000, 9);
    const { app, port } = await server((app) => app.read("pxe.0", () => file), { singlePort, maxRequestsPerSecond: 1_000_000 });
    const runtime = await loadRuntime();
    let waiting: ((a: Answer) => void) | null = null;
    const inbox: Answer[] = [];
    const rom = await runtime.bind("127.0.0.1", 0, (data, _address, from) => {
      const a = { data: data.slice(), port: from };
      if (waiting) (waiting(a), (waiting = null));
      else inbox.push(a);
    });
    const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()!) : new Promise<Answer>((resolve) => (waiting = resolve)));
    const send = (bytes: Uint8Array, to: number) => rom.send(bytes, to, "127.0.0.1", () => {});
    const rrq = Uint8Array.from([0, 1, ...new TextEncoder().encode("pxe.0\0octet\0tsize\x000\0blksize\x001024\0")]);
    const error8 = Uint8Array.from([0, 5, 0, 8, 0]);
    let dropped = 0;
    try {
      for (let cycle = 0; cycle < 1000 && dropped < 5; cycle++) {
        send(rrq, port);
        const oack = await within(runtime, next(), 2000, "OACK");
        assert.is(oack.data[1], 6, `cycle ${cycle}: not an OACK`);
        // Half the cycles the RRQ overtakes the ERROR, as it may between two sockets (with a single
        // port both go to one socket, in order).
        if (singlePort || cycle % 2 === 0) (send(error8, oack.port), send(rrq, port));
        else (send(rrq, port), send(error8, oack.port));
        // A request taken for a repeat goes unanswered: the ROM would wait out its own timeout.
        const again = await within(runtime, next(), 500, "answer").catch(() => null);
        if (again === null) {
          dropped++;
          continue;
        }
        assert.is(again.data[1], 6, `cycle ${cycle}: the re-request got ${again.data[1]}`);
        send(Uint8Array.from([0, 4, 0, 0]), again.port);
        const data = await within(runtime, next(), 2000, "DATA 1");
        assert.equal([data.data[1], data.data.length], [3, 1004]);
        send(Uint8Array.from([0, 4, 0, 1]), again.port);
        // The transfer is done once its last ACK is in; the next cycle's RRQ comes from the same port.
        while (app.engine!.load > 0) await new Promise<void>((resolve) => runtime.after(1, resolve));
      }
      assert.is(dropped, 0, `${dropped} re-requests dropped`);
      assert.equal(inbox, [], "stray answers");
    } finally {
      rom.close();
      await app.close();
    }
  });
}

// 4 blocks of 32 KiB in flight: a window that fits the default 208 KiB socket receive buffer, which
// Deno's UDP sockets cannot enlarge (the client here runs on the same runtime as the server).
test("a streaming body of 64 MiB is served block by block (windowsize 4, blksize 32768)", async () => {
  const size = 64 * 1024 * 1024;
  let produced = 0;
  const { app, client } = await server((app) =>
    app.read("big", () =>
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (produced >= size) return c.close();
          const chunk = new Uint8Array(Math.min(1 << 20, size - produced)).fill(produced >>> 20);
          produced += chunk.length;
          c.enqueue(chunk);
        },
      }, { highWaterMark: 0 })
    )
  );
  try {
    const r = await client.get("big", { blksize: 32768, windowsize: 4 });
    assert.is(r.data.length, size);
    assert.is(r.data[size - 1], 63);
    assert.is(r.data[5 << 20], 5);
  } finally {
    await app.close();
  }
});

test("uploads: the handler gets the stream; accept sees the announced size; verdicts decide the last ACK", async () => {
  const stored = new Map<string, Uint8Array>();
  let announced: number | undefined;
  const { app, client } = await server((app) => {
    app.write("configs/*", {
      accept: ({ size }) => {
        announced = size;
        return size === undefined || size < 1_000_000;
      },
      handle: async ({ filename, body }) => {
        stored.set(filename, new Uint8Array(await new Response(body).arrayBuffer()));
      },
    });
    app.write("refuse-at-end", async ({ body }) => {
      await new Response(body).arrayBuffer();
      return false;
    });
    app.write("full", async ({ body }) => {
      await body.cancel();
      throw new TftpError(3, "quota exceeded");
    });
  }, { maxUploadSize: 2_000_000 });
  try {
    await client.put("configs/a", body, { blksize: 1000, tsize: true });
    assert.equal(stored.get("configs/a"), body);
    assert.is(announced, body.length);
    await client.put("configs/b", bytesOf(5000), { windowsize: 4 });
    assert.equal(stored.get("configs/b"), bytesOf(5000));
    assert.is(announced, undefined);
    await rejects(client.put("configs/big", bytesOf(1_500_000), { tsize: true }), 2);
    assert.not.ok(stored.has("configs/big"));
    await rejects(client.put("configs/huge", bytesOf(3_000_000), { tsize: true }), 3);
    await rejects(client.put("configs/huge", bytesOf(3_000_000), { blksize: 65464 }), 3);
    await rejects(client.put("refuse-at-end", bytesOf(3000)), 2, "upload refused");
    await rejects(client.put("full", bytesOf(3000)), 3, "quota exceeded");
    await rejects(client.put("elsewhere", bytesOf(10)), 2);
  } finally {
    await app.close();
  }
});

test("at maxSessions, a new request is dropped unanswered (reported to the operator) and the client's retransmission is served once a session frees", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let slowRuns!: () => void;
  const slowRunning = new Promise<void>((r) => (slowRuns = r));
  let reported!: () => void;
  const dropReported = new Promise<void>((r) => (reported = r));
  const events: { filename: string; dropped?: number; error?: { message: string } }[] = [];
  const { app, client } = await server((app) => {
    app.read("slow", async () => {
      slowRuns();
      await gate;
      return "done";
    });
    app.read("fast", () => "fast");
  }, { maxSessions: 1, onTransfer: (e) => (events.push(e), e.dropped !== undefined && reported()) });
  const runtime = await loadRuntime();
  try {
    // Both are awaited below; caught now so that a failed check before then does not leave them unhandled.
    const slow = client.get("slow");
    slow.catch(() => {});
    await within(runtime, slowRunning, 2000, "the first request reaching its handler");
    const fast = client.get("fast"); // its first request meets a full server; it retransmits at 500 ms
    fast.catch(() => {});
    await within(runtime, dropReported, 2000, "the dropped request's report");
    assert.equal(events.map((e) => [e.filename, e.error?.message, e.dropped]), [["fast", "server busy", 1]]);
    release();
    assert.is(text.decode((await slow).data), "done");
    assert.is(text.decode((await fast).data), "fast");
  } finally {
    release();
    await app.close();
  }
});

test("netascii: LF goes out as CR LF and comes back as LF, both ways", async () => {
  const lines = "line one\nline two\r\nbare\rend\n";
  let uploaded = "";
  const { app, client } = await server((app) => {
    app.read("t.txt", () => lines);
    app.write("u.txt", async ({ body }) => {
      uploaded = await new Response(body).text();
    });
  });
  try {
    assert.is(text.decode((await client.get("t.txt", { mode: "netascii" })).data), lines);
    assert.is(text.decode((await client.get("t.txt", { mode: "octet" })).data), lines);
    await client.put("u.txt", lines, { mode: "netascii", blksize: 8 });
    assert.is(uploaded, lines);
  } finally {
    await app.close();
  }
});

test("single-port mode: transfers are answered from the listening port", async () => {
  const { app, client } = await server((app) => app.read("*", ({ port }) => `p${port}`), { singlePort: true });
  try {
    const [a, b] = await Promise.all([client.get("one", { blksize: 100 }), client.get("two")]);
    assert.match(text.decode(a.data), /^p\d+$/);
    assert.match(text.decode(b.data), /^p\d+$/);
    assert.is.not(text.decode(a.data), text.decode(b.data));
    const rrq = [0, 1, ...new TextEncoder().encode("x\0octet\0")];
    const first = await rawExchange(app.address!.port, rrq);
    assert.equal([first.data[1], first.data[3]], [3, 1], "DATA 1");
    assert.is(first.port, app.address!.port, "answered from another port");
  } finally {
    await app.close();
  }
});

test("a client's ERROR with a long message ends a read transfer and gets no answer (Deno's socket cuts it)", async () => {
  const ended: { outcome: string; error?: { code: number; message: string; byPeer: boolean } }[] = [];
  let transferEnded: () => void;
  const done = new Promise<void>((resolve) => (transferEnded = resolve));
  const { app, port } = await server((app) => app.read("f", () => body), {
    onTransfer: (e) => (ended.push(e), transferEnded()),
  });
  const runtime = await loadRuntime();
  const answers: Answer[] = [];
  let answered: () => void;
  const first = new Promise<void>((resolve) => (answered = resolve));
  const peer = await runtime.bind("127.0.0.1", 0, (data, _address, from) => (answers.push({ data: data.slice(), port: from }), answered()));
  try {
    peer.send(Uint8Array.from([0, 1, ...new TextEncoder().encode("f\0octet\0")]), port, "127.0.0.1", () => {});
    await within(runtime, first, 2000, "DATA 1");
    const message = new TextEncoder().encode("disk full: ".padEnd(600, "."));
    peer.send(Uint8Array.from([0, 5, 0, 3, ...message, 0]), answers[0].port, "127.0.0.1", () => {});
    await within(runtime, done, 2000, "end of the transfer");
    assert.equal(ended.map((e) => [e.outcome, e.error?.code, e.error?.byPeer]), [["failed", 3, true]]);
    assert.ok(ended[0].error!.message.startsWith("disk full: ...."), `message: ${ended[0].error!.message}`);
    assert.is(app.engine!.load, 0);
    // An answer to the ERROR would come after the transfer's end: give it time to arrive.
    await new Promise<void>((resolve) => runtime.after(200, resolve));
    assert.ok(answers.every((a) => a.data[1] === 3), "the ERROR was answered");
  } finally {
    peer.close();
    await app.close();
  }
});

test.run();
