// Uploads into serveDir under contention and refusal: nothing interleaved,
// nothing partial, nothing left behind.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Emmer, serveDir, TftpClient, TftpError } from "../mod.ts";
import { bytesOf } from "./support/session_driver.ts";

/** `handlersDone()` resolves once every write handler started so far has settled (cleanup included). */
async function withServer(
  options: ConstructorParameters<typeof Emmer>[0],
  fn: (root: string, client: TftpClient, handlersDone: () => Promise<unknown>) => Promise<void>,
) {
  const root = await mkdtemp(join(tmpdir(), "emmer-up-"));
  const app = new Emmer({ port: 0, drainTimeout: 300, onError: () => {}, ...options });
  const dir = serveDir(root, { write: true }).write!;
  const running: Promise<unknown>[] = [];
  app.write("*", {
    accept: dir.accept,
    handle: (ctx) => {
      const p = Promise.resolve(dir.handle(ctx));
      running.push(p.catch(() => {}));
      return p;
    },
  });
  await app.listen();
  try {
    // Retries that outlast the server's 3 s dally: a put from a port the OS hands out again right
    // after an upload of the same name (same.bin, below) is taken for that upload's repeat until then.
    const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 300, retries: 12 });
    await fn(root, client, () => Promise.all(running));
  } finally {
    await app.close();
    await rm(root, { recursive: true, force: true });
  }
}

test("two concurrent uploads of one name: one whole file wins, never a mix", () =>
  withServer({}, async (root, client) => {
    const a = bytesOf(400_000, 1);
    const b = bytesOf(400_000, 2);
    for (let round = 0; round < 5; round++) {
      await Promise.all([client.put("same.bin", a, { blksize: 512 }), client.put("same.bin", b, { blksize: 1468 })]);
      const got = new Uint8Array(await readFile(join(root, "same.bin")));
      const isA = Buffer.compare(got, a) === 0;
      const isB = Buffer.compare(got, b) === 0;
      assert.ok(isA || isB, `round ${round}: the file is neither upload (${got.length} bytes)`);
    }
    assert.equal(await readdir(root), ["same.bin"]);
  }));

test("an upload refused by its announced size (tsize) gets ERROR 3 before any data and leaves nothing", () =>
  withServer({ maxUploadSize: 10_000 }, async (root, client) => {
    try {
      await client.put("big.bin", bytesOf(20_000), { tsize: true });
      assert.unreachable("accepted");
    } catch (e) {
      assert.instance(e, TftpError);
      assert.is((e as TftpError).code, 3);
    }
    assert.equal(await readdir(root), []);
  }));

test("an upload that grows past the cap without announcing it gets ERROR 3 and leaves nothing", () =>
  withServer({ maxUploadSize: 10_000 }, async (root, client, handlersDone) => {
    try {
      await client.put("big.bin", bytesOf(20_000), { blksize: 1000 });
      assert.unreachable("accepted");
    } catch (e) {
      assert.instance(e, TftpError);
      assert.is((e as TftpError).code, 3);
    }
    // The client has its ERROR; the handler may still be opening its temporary file. Once it is done:
    await handlersDone();
    assert.equal(await readdir(root), []);
  }));

test("close() during an upload lets it finish: the client gets its last ACK and the file is whole", async () => {
  const root = await mkdtemp(join(tmpdir(), "emmer-up-"));
  const app = new Emmer({ port: 0, drainTimeout: 10_000, onError: () => {} });
  app.write("*", serveDir(root, { write: true }).write!);
  await app.listen();
  try {
    const client = new TftpClient("127.0.0.1", app.address!.port, { timeoutMs: 300, retries: 3 });
    const body = bytesOf(3_000_000, 5);
    // close() comes once the server has acknowledged a first megabyte: well into the transfer.
    let acked = 0;
    let intoIt!: () => void;
    const wellInto = new Promise<void>((r) => (intoIt = r));
    const upload = client.put("during-close.bin", body, { blksize: 512, onProgress: (bytes) => ((acked = bytes), bytes >= 1_000_000 && intoIt()) });
    await Promise.race([wellInto, upload]);
    assert.ok(acked < body.length, "the upload had ended before close()");
    await Promise.all([upload, app.close()]);
    assert.equal(new Uint8Array(await readFile(join(root, "during-close.bin"))), body);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
