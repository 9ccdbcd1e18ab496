// A load-balanced TFTP site in network namespaces, for tests/scaleout.test.ts
// and bench/scaleout.mjs: a client namespace, a balancer namespace and N
// instance namespaces, each joined to the balancer by a veth pair. The
// balancer spreads the virtual address VIP:69 over the instances with
// nftables DNAT (numgen random, as kube-proxy's nftables mode does), and
// optionally masquerades (the instances then see the balancer as the client)
// and attaches the conntrack TFTP helper. Every address lives only inside these
// namespaces (documentation ranges). Needs root, iproute2 and nft.
//
//   clients 198.51.100.2 (+ .10, .11, ... when asked) --- 198.51.100.1 balancer
//   balancer 192.0.2.(4i+1)/30 --- 192.0.2.(4i+2)/30 instance i (i = 1..N)
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(repo, "dist", "emmer-node.js");
export const VIP = "203.0.113.10";
const CLIENT = "198.51.100.2";

// What is still up (namespaces, instances) is ended when the process exits, also on Ctrl-C or SIGTERM.
const live = new Set();
process.once("exit", () => {
  for (const end of live) end();
});
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => process.exit(130));

/** Runs a command to its end (bounded); throws with its output when it fails. */
function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000, input });
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.error?.message ?? `exit ${r.status}`} ${r.stderr ?? ""}`);
  return r.stdout;
}

/** Why namespaces cannot be made here (not root, no ip or nft, no netns), or undefined when they can. */
export function netnsUnavailable() {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root";
  for (const tool of ["ip", "nft"]) {
    if (spawnSync(tool, ["-V"], { timeout: 5000 }).error) return `${tool} is not installed (iproute2, nftables)`;
  }
  const probe = `emsc${process.pid}probe`;
  const r = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8", timeout: 5000 });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  const nft = spawnSync("ip", ["netns", "exec", probe, "nft", "list", "ruleset"], { encoding: "utf8", timeout: 5000 });
  spawnSync("ip", ["netns", "del", probe], { timeout: 5000 });
  if (nft.status !== 0) return `nft does not run in a namespace: ${nft.stderr.trim()}`;
  return undefined;
}

/**
 * The balancer's nftables ruleset. `backends`: the instances' addresses;
 * `port`: the instances' UDP port (DNAT rewrites 69 to it); `masquerade`: the
 * instances see the balancer's address instead of the client's; `helper`:
 * attach the conntrack TFTP helper, so that a transfer answered from a new port
 * is let back through and rewritten to come from VIP. The helper is attached
 * before DNAT (priority mangle), while the packet still reads VIP:69.
 */
export function ruleset({ backends, port = 69, masquerade = false, helper = false }) {
  const n = backends.length;
  // Rewriting the port too needs the address . port form of dnat.
  const target =
    port === 69
      ? `to numgen random mod ${n} map { ${backends.map((a, i) => `${i} : ${a}`).join(", ")} }`
      : `ip addr . port to numgen random mod ${n} map { ${backends.map((a, i) => `${i} : ${a} . ${port}`).join(", ")} }`;
  return [
    "table ip emmer_lb {",
    ...(helper
      ? [
          '  ct helper tftp { type "tftp" protocol udp; l3proto ip; }',
          "  chain helper {",
          "    type filter hook prerouting priority mangle; policy accept;",
          `    ip daddr ${VIP} udp dport 69 ct helper set "tftp"`,
          "  }",
        ]
      : []),
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    `    ip daddr ${VIP} udp dport 69 dnat ${target}`,
    "  }",
    ...(masquerade
      ? ["  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;", "    ct status dnat masquerade", "  }"]
      : []),
    "}",
    "",
  ].join("\n");
}

/**
 * Builds the namespaces and loads the ruleset. `clientAddresses`: extra client
 * addresses 198.51.100.10, .11, ... (a boot storm comes from many machines;
 * curl picks one with --interface). Call destroy() in a finally block.
 */
export function createTopology({ instances, port = 69, masquerade = false, helper = false, clientAddresses = 0 }) {
  const p = `emsc${process.pid}${Math.random().toString(36).slice(2, 6)}`;
  const ns = { balancer: `${p}b`, clients: `${p}c`, hosts: Array.from({ length: instances }, (_, i) => `${p}s${i + 1}`) };
  const all = [ns.balancer, ns.clients, ...ns.hosts];
  const made = [];
  const destroy = () => {
    live.delete(destroy);
    for (const n of made.splice(0)) spawnSync("ip", ["netns", "del", n], { timeout: 10_000 });
  };
  live.add(destroy);
  try {
    for (const n of all) {
      sh("ip", ["netns", "add", n]);
      made.push(n);
      sh("ip", ["-n", n, "link", "set", "lo", "up"]);
    }
    // Interface names are per namespace; only the creation needs them unique.
    sh("ip", ["link", "add", "c0", "netns", ns.clients, "type", "veth", "peer", "name", "bc", "netns", ns.balancer]);
    const clientCmds = [`addr add ${CLIENT}/24 dev c0`, "link set c0 up", "route add default via 198.51.100.1"];
    for (let i = 0; i < clientAddresses; i++) clientCmds.splice(1, 0, `addr add 198.51.100.${10 + i}/24 dev c0`);
    sh("ip", ["-n", ns.clients, "-batch", "-"], clientCmds.join("\n") + "\n");
    sh("ip", ["-n", ns.balancer, "-batch", "-"], "addr add 198.51.100.1/24 dev bc\nlink set bc up\n");
    // /proc/sys/net is the reading process's namespace's (no procps needed)
    sh("ip", ["netns", "exec", ns.balancer, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    const addresses = ns.hosts.map((host, i) => {
      const gw = `192.0.2.${4 * (i + 1) + 1}`;
      const address = `192.0.2.${4 * (i + 1) + 2}`;
      sh("ip", ["link", "add", "s0", "netns", host, "type", "veth", "peer", "name", `b${i + 1}`, "netns", ns.balancer]);
      sh("ip", ["-n", host, "-batch", "-"], `addr add ${address}/30 dev s0\nlink set s0 up\nroute add default via ${gw}\n`);
      sh("ip", ["-n", ns.balancer, "-batch", "-"], `addr add ${gw}/30 dev b${i + 1}\nlink set b${i + 1} up\n`);
      return address;
    });
    const rules = ruleset({ backends: addresses, port, masquerade, helper });
    sh("ip", ["netns", "exec", ns.balancer, "nft", "-f", "-"], rules);
    const clientList = clientAddresses > 0 ? Array.from({ length: clientAddresses }, (_, i) => `198.51.100.${10 + i}`) : [CLIENT];
    return { ...ns, addresses, clientAddresses: clientList, port, rules, destroy };
  } catch (e) {
    destroy();
    throw e;
  }
}

/** The argument list that runs `cmd args` inside namespace `ns` (ip netns exec execs it: same PID). */
export const inNs = (ns, cmd, args) => ["ip", ["netns", "exec", ns, cmd, ...args]];

/**
 * Starts emmer-node in an instance namespace, listening on 0.0.0.0:port.
 * Resolves once it prints its startup line; `lines` collects its stdout lines
 * (one per transfer). stop() ends it by PID; `timeoutMs` bounds its life.
 */
export function startInstance(host, { root, port = 69, flags = [], timeoutMs = 300_000 }) {
  if (!existsSync(CLI)) sh(process.execPath, [join(repo, "scripts", "build-cli.mjs")]);
  const [cmd, args] = inNs(host, process.execPath, [CLI, "--root", root, "--host", "0.0.0.0", "--port", String(port), ...flags]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const lines = [];
  let err = "";
  let rest = "";
  const stop = () => {
    live.delete(stop);
    clearTimeout(limit);
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const limit = setTimeout(stop, timeoutMs);
  live.add(stop);
  return new Promise((resolve, reject) => {
    const startup = setTimeout(() => (stop(), reject(new Error(`emmer-node in ${host} did not start: ${err}`))), 20_000);
    child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
    child.stdout.setEncoding("utf8").on("data", (d) => {
      const parts = (rest + d).split("\n");
      rest = parts.pop();
      for (const line of parts) {
        if (line.startsWith("emmer-node: serving")) {
          clearTimeout(startup);
          resolve({ child, lines, stop, stderr: () => err });
        } else lines.push(line);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(startup);
      clearTimeout(limit);
      reject(new Error(`emmer-node in ${host} exited ${code}: ${err}`));
    });
  });
}

/** Transfers of `file` an instance logged as ok (its share of a storm); --verbose lines go on after " ok |". */
export const served = (lines, file) => lines.filter((l) => l.includes(` read "${file}" `) && / ok( \|.*)?$/.test(l)).length;

/** Runs `fn` over `items` with at most `limit` at a time; results in order. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
