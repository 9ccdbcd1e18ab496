// Scale-out behind the kernel's own load balancer: emmer-node instances in
// network namespaces behind an nftables DNAT balancer (tests/support/netns.mjs),
// real clients in another namespace, every download checked by sha256 and each
// instance's share read from its log lines. It shows which deployments work:
// --single-port behind DNAT, with or without masquerade, and the default mode
// (a new port per transfer) only with the conntrack TFTP helper; without it,
// behind masquerade, nothing comes back. Needs root, iproute2 and nft: skipped
// without them, failed in CI (CI=true). Node only (tests/run.mjs NODE_ONLY):
// the instances are the bundled CLI whatever runtime runs this file.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandFor, failed, hasPeer, type Peer, run } from "./support/peers.ts";
import { bytesOf } from "./support/session_driver.ts";
// Deno reads a JavaScript module's types only where told to; tsc finds the .d.mts beside it.
// @ts-types="./support/netns.d.mts"
import { createTopology, inNs, type Instance, netnsUnavailable, pool, served, type SiteOptions, startInstance, type Topology, VIP } from "./support/netns.mjs";

const CI = process.env.CI === "true";
const unavailable = netnsUnavailable();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const FILE = "big.bin";
const bytes = bytesOf(1024 * 1024 + 333, 17);
const want = sha(bytes);

interface Site {
  topo: Topology;
  instances: Instance[];
  dir: string;
}

/** A suite with its own site (namespaces, ruleset, instances), torn down after it whatever happens. */
function siteSuite(title: string, site: SiteOptions, flags: string[]) {
  const s = suite<{ site?: Site; setupError?: unknown }>(title);
  s.before(async (ctx) => {
    if (unavailable) return;
    const dir = await mkdtemp(join(tmpdir(), "emmer-scaleout-"));
    try {
      await writeFile(join(dir, FILE), bytes);
      const topo = createTopology(site); // removes what it made if it fails
      ctx.site = { topo, instances: [], dir };
      for (const host of topo.hosts) ctx.site.instances.push(await startInstance(host, { root: dir, port: site.port, flags, timeoutMs: 120_000 }));
    } catch (e) {
      ctx.setupError = e; // uvu would swallow it: each test rethrows it
      if (!ctx.site) await rm(dir, { recursive: true, force: true });
    }
  });
  s.after(async (ctx) => {
    if (!ctx.site) return;
    for (const i of ctx.site.instances) i.stop();
    ctx.site.topo.destroy();
    await rm(ctx.site.dir, { recursive: true, force: true });
  });
  return s;
}

type SiteSuite = ReturnType<typeof siteSuite>;

/** Registers a test needing namespaces and these clients: skipped without them, failed in CI. */
function siteTest(s: SiteSuite, name: string, peers: Peer[], fn: (site: Site) => Promise<void>) {
  const missing = unavailable ?? peers.filter((p) => !hasPeer(p)).map((p) => `${p} is not installed`)[0];
  if (!missing) {
    s(name, (ctx) => {
      if (ctx.setupError) throw ctx.setupError;
      return fn(ctx.site!);
    });
  }
  else if (CI) s(name, () => assert.unreachable(`${missing} (CI must provide root, iproute2, nftables and the clients)`));
  else s.skip(name);
}

/** One download through the balancer by `peer` in the client namespace; true when the file arrived intact. */
async function download(site: Site, peer: Peer, o: { blksize?: number; windowsize?: number; timeoutMs?: number } = {}) {
  const local = join(site.dir, `got-${peer}-${Math.random().toString(36).slice(2)}`);
  const { cmd, args } = commandFor(peer, "get", { host: VIP, port: 69, remote: FILE, local, timeoutMs: o.timeoutMs ?? 30_000, ...o });
  const [c, a] = inNs(site.topo.clients, cmd, args);
  const r = await run(c, a, o.timeoutMs ?? 30_000);
  const got = await readFile(local).catch(() => new Uint8Array());
  await rm(local, { force: true });
  return { intact: !failed(peer, r) && sha(new Uint8Array(got)) === want, r };
}

/** `count` curl downloads, `concurrency` at a time, each from the next client address; how many arrived intact. */
async function storm(site: Site, count: number, concurrency: number) {
  const from = site.topo.clientAddresses;
  const results = await pool(Array.from({ length: count }, (_, i) => i), concurrency, async (i) => {
    const local = join(site.dir, `storm-${i}`);
    const args = ["-sS", "--interface", from[i % from.length], "--tftp-blksize", "1468", "--max-time", "30", "-o", local, `tftp://${VIP}/${FILE}`];
    const [c, a] = inNs(site.topo.clients, "curl", args);
    const r = await run(c, a, 40_000);
    const got = await readFile(local).catch(() => new Uint8Array());
    await rm(local, { force: true });
    return r.code === 0 && sha(new Uint8Array(got)) === want;
  });
  return results.filter(Boolean).length;
}

/** Each instance's count of intact-logged transfers of FILE. */
async function shares(site: Site, total: number) {
  // A transfer's log line comes once its last ACK is in, which is before curl exits; allow a moment anyway.
  for (let i = 0; i < 50 && site.instances.reduce((n, x) => n + served(x.lines, FILE), 0) < total; i++) await new Promise((r) => setTimeout(r, 20));
  return site.instances.map((x) => served(x.lines, FILE));
}

async function peersIntact(site: Site, peer: Peer, o: { blksize?: number; windowsize?: number }) {
  for (let i = 0; i < 3; i++) {
    const { intact, r } = await download(site, peer, o);
    assert.ok(intact, `${peer} download ${i + 1} through ${VIP}: exit ${r.code} ${r.stdout} ${r.stderr}`);
  }
}

const CLIENTS: [Peer, { blksize?: number; windowsize?: number }][] = [
  ["curl", { blksize: 1468 }],
  ["atftp", { blksize: 1468, windowsize: 8 }],
  ["busybox", { blksize: 1468 }],
  ["tftp-hpa", {}],
];

// The recommended deployment: every packet to and from VIP:69, conntrack keeps each client's flow on one instance.
const single = siteSuite("--single-port behind DNAT (numgen random) over 2 instances", { instances: 2, clientAddresses: 20 }, ["--single-port"]);
siteTest(single, "a storm of 60 curl downloads, 20 at a time from 20 addresses: all intact, every instance a share", ["curl"], async (site) => {
  assert.is(await storm(site, 60, 20), 60, "intact downloads");
  const share = await shares(site, 60);
  assert.is(share.reduce((a, b) => a + b, 0), 60, `shares ${share.join("/")}`);
  for (const [i, n] of share.entries()) assert.ok(n > 0, `instance ${i + 1} served none (${share.join("/")})`);
});
single.run();

// As a Kubernetes Service does it: port 69 rewritten to an unprivileged port, and (externalTrafficPolicy Cluster) masquerade.
const masq = siteSuite("--single-port behind DNAT to port 3942 + masquerade over 2 instances", { instances: 2, port: 3942, masquerade: true }, ["--single-port"]);
for (const [peer, o] of CLIENTS) {
  const what = o.windowsize ? `blksize ${o.blksize} windowsize ${o.windowsize}` : o.blksize ? `blksize ${o.blksize}` : "no options";
  siteTest(masq, `${peer} (${what}): 3 downloads intact`, [peer], (site) => peersIntact(site, peer, o));
}
masq.run();

// The default mode answers from a new port: the helper expects that flow and rewrites it to come from VIP.
const helper = siteSuite("default mode behind DNAT + masquerade with the conntrack TFTP helper over 2 instances", { instances: 2, masquerade: true, helper: true, clientAddresses: 10 }, []);
for (const [peer, o] of CLIENTS) {
  const what = o.windowsize ? `blksize ${o.blksize} windowsize ${o.windowsize}` : o.blksize ? `blksize ${o.blksize}` : "no options";
  siteTest(helper, `${peer} (${what}): 3 downloads intact`, [peer], (site) => peersIntact(site, peer, o));
}
siteTest(helper, "a storm of 30 curl downloads, 10 at a time: all intact, every instance a share", ["curl"], async (site) => {
  const before = await shares(site, 0);
  assert.is(await storm(site, 30, 10), 30, "intact downloads");
  const share = (await shares(site, before.reduce((a, b) => a + b, 0) + 30)).map((n, i) => n - before[i]);
  assert.is(share.reduce((a, b) => a + b, 0), 30, `shares ${share.join("/")}`);
  for (const [i, n] of share.entries()) assert.ok(n > 0, `instance ${i + 1} served none (${share.join("/")})`);
});
helper.run();

// The control: the same site without the helper. The instance's DATA from its new port is not part of the
// client's conntrack flow, so it goes to the balancer's own address, where nothing listens.
const bare = siteSuite("default mode behind DNAT + masquerade without the helper", { instances: 1, masquerade: true }, []);
siteTest(bare, "curl gets nothing within 3 s", ["curl"], async (site) => {
  const local = join(site.dir, "bare");
  const [c, a] = inNs(site.topo.clients, "curl", ["-sS", "--max-time", "3", "-o", local, `tftp://${VIP}/${FILE}`]);
  const r = await run(c, a, 10_000);
  assert.is(r.code, 28, `curl should time out (exit 28): exit ${r.code} ${r.stderr}`);
  assert.is(served(site.instances[0].lines, FILE), 0);
});
bare.run();
