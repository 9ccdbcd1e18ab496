// A server on "::" (one dual-stack socket) and IPv4 clients: handlers and
// onTransfer see the client as plain IPv4 ("127.0.0.1", not "::ffff:127.0.0.1"),
// and the replies still reach it, on every runtime's sockets: downloads of
// several windows, an upload, and a client that names the server by its mapped address.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Emmer, TftpClient, type TransferEvent } from "../mod.ts";
import { unmapIPv4 } from "../adapters/ipv4_mapped.ts";
import { bytesOf } from "./support/session_driver.ts";

test("unmapIPv4 unmaps IPv4-mapped addresses only", () => {
  assert.is(unmapIPv4("::ffff:127.0.0.1"), "127.0.0.1");
  assert.is(unmapIPv4("127.0.0.1"), "127.0.0.1");
  assert.is(unmapIPv4("::1"), "::1");
  assert.is(unmapIPv4("::ffff:7f00:1"), "::ffff:7f00:1"); // not a form the runtimes report
  assert.is(unmapIPv4("fe80::ffff:1"), "fe80::ffff:1");
});

for (const singlePort of [false, true]) {
  test(`a server on "::"${singlePort ? " (singlePort)" : ""} serves IPv4 clients and knows them as IPv4`, async () => {
    const events: TransferEvent[] = [];
    const seen: string[] = [];
    const app = new Emmer({ hostname: "::", port: 0, singlePort, onTransfer: (e) => events.push(e) });
    let uploaded: Uint8Array | null = null;
    app.read("whoami", ({ address }) => (seen.push(address), address));
    app.read("big", ({ address }) => (seen.push(address), bytesOf(300_000, 7)));
    app.write("up", async ({ address, body }) => {
      seen.push(address);
      uploaded = new Uint8Array(await new Response(body).arrayBuffer());
    });
    await app.listen();
    try {
      const port = app.address!.port;
      for (const host of ["127.0.0.1", "::ffff:127.0.0.1"]) {
        const client = new TftpClient(host, port, { timeoutMs: 1000 });
        assert.is(new TextDecoder().decode((await client.get("whoami")).data), "127.0.0.1", `as ${host}`);
        assert.equal((await client.get("big", { blksize: 1400, windowsize: 8 })).data, bytesOf(300_000, 7), `as ${host}`);
        if (singlePort) continue; // uploads once: a finished upload lingers, and close() waits for it
        await client.put("up", bytesOf(20_000, 2), { blksize: 512 });
        assert.equal(uploaded, bytesOf(20_000, 2));
      }
      assert.equal([...new Set(seen)], ["127.0.0.1"]);
    } finally {
      await app.close(); // an upload's transfer lingers after its last ACK, in case the ACK is lost
    }
    assert.is(events.length, singlePort ? 4 : 6, JSON.stringify(events.map((e) => [e.kind, e.filename])));
    for (const e of events) assert.equal([e.address, e.outcome], ["127.0.0.1", "ok"]);
  });
}

test('a server on "::" still knows IPv6 clients by their IPv6 address', async () => {
  const app = new Emmer({ hostname: "::", port: 0 });
  app.read("whoami", ({ address }) => address);
  await app.listen();
  try {
    const got = await new TftpClient("::1", app.address!.port, { timeoutMs: 1000 }).get("whoami");
    assert.is(new TextDecoder().decode(got.data), "::1");
  } finally {
    await app.close();
  }
});

test.run();
