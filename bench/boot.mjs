// The boot matrix of tests/boot/ (real firmware in QEMU, software emulation,
// each run in its own network namespace) against emmer-node and tftpd-hpa in
// one run, as a table: client, card, options, server, seconds, pass.
//   node bench/boot.mjs [--only TEXT]
// Seconds: iPXE and OVMF from QEMU's start to the guest's success line (mostly
// firmware and Linux start-up under emulation); U-Boot from the tftpboot
// command to its result (the transfer, ARP and slirp included). A run that
// fails shows its first problem and the console's last lines below the table. Needs root, QEMU, the firmware
// and the kernel (.ci/install-boot.sh) and tftpd-hpa (.ci/install-peers.sh).
// --only keeps the rows whose "client card options" text contains TEXT.
import { existsSync } from "node:fs";
import { tsImport } from "tsx/esm/api";
import { flag } from "./servers.mjs";

const { bootIpxe, bootOvmf, bootUboot } = await tsImport("../tests/boot/support/scenarios.ts", import.meta.url);
const { missing } = await tsImport("../tests/boot/support/firmware.ts", import.meta.url);
const { ensureCli } = await tsImport("../tests/boot/support/emmer.ts", import.meta.url);
const { TFTPD_HPA } = await tsImport("../tests/boot/support/servers.ts", import.meta.url);

const ONLY = flag("--only", "");
const lacking = missing(["root", "iproute2", "qemu-x86", "qemu-arm", "seabios", "ipxe", "ovmf", "u-boot", "grub-efi", "dnsmasq", "busybox-static", "kernel"]);
if (lacking.length > 0) {
  console.error(`bench/boot: missing ${lacking.join(", ")} (.ci/install-boot.sh installs them)`);
  process.exit(1);
}
ensureCli();
const servers = ["emmer-node", ...(existsSync(TFTPD_HPA) ? ["tftpd-hpa"] : [])];
if (servers.length === 1) console.log(`# tftpd-hpa missing (${TFTPD_HPA}; .ci/install-peers.sh installs it): emmer-node only`);

const MiB = 2 ** 20;
const matrix = [
  { label: "iPXE (SeaBIOS) e1000", run: (s) => bootIpxe(s) },
  { label: "UEFI PXE (OVMF) + GRUB virtio-net", run: (s) => bootOvmf(s) },
  { label: "U-Boot e1000 blksize 1468", run: (s) => bootUboot(s, { blksize: 1468, windowsize: 1, size: 4 * MiB + 321 }) },
  { label: "U-Boot e1000 blksize 1468 windowsize 4", run: (s) => bootUboot(s, { blksize: 1468, windowsize: 4, size: 4 * MiB + 321, tftpTimeoutMs: 60_000 }) },
  { label: "U-Boot e1000 blksize 1468 windowsize 8", run: (s) => bootUboot(s, { blksize: 1468, windowsize: 8, size: 4 * MiB + 321, tftpTimeoutMs: 60_000 }) },
  { label: "U-Boot virtio-net blksize 1468 windowsize 8", run: (s) => bootUboot(s, { blksize: 1468, windowsize: 8, size: 4 * MiB + 321, tftpTimeoutMs: 60_000, card: "virtio-net" }) },
  { label: "U-Boot e1000 blksize 512 rollover", run: (s) => bootUboot(s, { blksize: 512, windowsize: 1, size: 33 * MiB + 4321, tftpTimeoutMs: 120_000 }) },
].filter((m) => m.label.includes(ONLY));

const rows = [];
for (const m of matrix) {
  for (const server of servers) {
    process.stderr.write(`# ${m.label} against ${server} ... `);
    const r = await m.run(server);
    const pass = r.problems.length === 0;
    process.stderr.write(`${pass ? "pass" : "FAIL"} ${r.seconds.toFixed(1)} s\n`);
    rows.push({ ...r, pass });
  }
}

const table = [["client", "card", "options", "server", "seconds", "pass"]];
for (const r of rows) table.push([r.client, r.card, r.options, r.server, Number.isNaN(r.seconds) ? "-" : r.seconds.toFixed(1), r.pass ? "yes" : "NO"]);
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
console.log(line(table[0]));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of table.slice(1)) console.log(line(row));
for (const r of rows.filter((x) => !x.pass)) {
  console.log(`\n${r.client} ${r.options} against ${r.server}: ${r.problems[0].split("\n")[0]}`);
  const said = r.console.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  console.log(`  console's last lines:\n${said.slice(-12).map((l) => `    ${l.slice(0, 200)}`).join("\n")}`);
}
