// mod.ts imported from a URL, with no install step: the repository is served
// over HTTP on 127.0.0.1, and a Deno script in an empty folder (no node_modules,
// no deno.json, a fresh module cache) imports http://127.0.0.1:PORT/mod.ts, adds
// a route, and answers a real client (curl).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { get, hasPeer } from "./support/peers.ts";
import { testNeeding } from "./support/needs.ts";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const deno = join(repo, "node_modules", ".bin", "deno");

function serveRepo(): Promise<{ server: Server; port: number; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url!, "http://x").pathname));
    requests.push(path);
    // Only the module tree a user would import: mod.ts, version.ts, core/, drivers/, adapters/.
    if (!/^\/(mod\.ts|version\.ts|core\/[\w.]+\.ts|drivers\/[\w.]+\.ts|adapters\/(native\/)?[\w.]+\.ts)$/.test(path)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(repo, path));
      res.writeHead(200, { "content-type": "application/typescript; charset=utf-8" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port, requests })));
}

function waitForLine(child: ChildProcess, re: RegExp, log: { out: string }): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(log.out);
      if (m) resolve(m);
    };
    child.stdout!.on("data", (d) => ((log.out += d), check()));
    child.stderr!.on("data", (d) => (log.out += d));
    child.on("exit", (code) => reject(new Error(`deno exited ${code}:\n${log.out}`)));
  });
}

for (const flags of [["-A"], ["-A", "--unstable-net"]]) {
  testNeeding(`deno run ${flags.join(" ")}: a script outside the repository imports mod.ts from a URL and serves a route`, { curl: hasPeer("curl") }, async () => {
    const { server, port, requests } = await serveRepo();
    const dir = await mkdtemp(join(tmpdir(), "emmer-url-"));
    let child: ChildProcess | null = null;
    try {
      await writeFile(
        join(dir, "app.ts"),
        `import { Emmer } from "http://127.0.0.1:${port}/mod.ts";
const app = new Emmer({ port: 0 });
app.read(/^greeting\\/(?<name>\\w+)$/, ({ params }) => \`hello \${params.name}, from a URL\\n\`);
await app.listen();
console.log("listening on", app.address!.port);
`,
      );
      child = spawn(deno, ["run", ...flags, "--no-config", "app.ts"], {
        cwd: dir,
        env: { ...process.env, DENO_DIR: join(dir, ".deno-cache"), NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const log = { out: "" };
      const m = await waitForLine(child, /listening on (\d+)/, log);
      assert.ok(requests.includes("/mod.ts"));
      assert.ok(requests.some((r) => r.startsWith("/core/")), "core/ came over HTTP too");
      const local = join(dir, "got.txt");
      const r = await get("curl", { host: "127.0.0.1", port: Number(m[1]), remote: "greeting/deno", local, timeoutMs: 15_000 });
      assert.is(r.code, 0, r.stderr);
      assert.is(await readFile(local, "utf8"), "hello deno, from a URL\n");
    } finally {
      child?.kill("SIGKILL");
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test.run();
