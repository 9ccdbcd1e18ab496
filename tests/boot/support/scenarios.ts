/**
 * The boot matrix: real firmware in QEMU (software emulation, no KVM) fetching
 * files from a TFTP server inside a private network namespace. Each run
 * returns what the guest's console and the server printed, how long it took
 * and what went wrong, judged from the guest's side (its own checksum of the
 * bytes it got). The tests add the server-log checks; bench/boot.mjs runs the
 * same matrix against tftpd-hpa too.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { IPXE_E1000_ROM, KERNEL, OVMF_CODE, OVMF_VARS, QEMU_ARM, QEMU_X86, UBOOT_ARM } from "./firmware.ts";
import { buildInitrd, INIT_MARKER } from "./initrd.ts";
import { type Netns, withNetns } from "./netns.ts";
import { type Child, startChild } from "./process.ts";
import { type ServerName, startServer } from "./servers.ts";

export interface BootRun {
  client: string;
  card: string;
  options: string;
  server: ServerName;
  /** iPXE and OVMF: QEMU's start to the success line; U-Boot: the tftpboot command to its result */
  seconds: number;
  /** what the guest got wrong; empty when it booted and its checksums match */
  problems: string[];
  console: string;
  log: string;
  /** the size of each file the server had to give, by name */
  files: Record<string, number>;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const elapsed = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
/** QEMU's console without its terminal escapes. */
const plain = (s: string) => s.replace(/\x1b\[[0-9;?=]*[a-zA-Z]/g, "").replace(/\x1bc/g, "");

/** A fresh folder with a world-readable root/ to serve (tftpd-hpa drops to "nobody"), removed afterwards. */
async function withWorkdir<T>(fn: (dir: string, root: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "emmer-boot-"));
  try {
    const root = join(dir, "root");
    await mkdir(root);
    await chmod(dir, 0o755);
    await chmod(root, 0o755);
    return await fn(dir, root);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Makes `names` in root world-readable and notes their sizes in `run.files`. */
async function served(run: BootRun, root: string, names: string[]): Promise<void> {
  for (const name of names) {
    await chmod(join(root, name), 0o644);
    run.files[name] = (await stat(join(root, name))).size;
  }
}

/** Gives QEMU `ms` to power itself off, then kills it by its PID. */
async function finish(qemu: Child, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([qemu.exited, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
  await qemu.stop();
}

const QEMU_COMMON = ["-accel", "tcg", "-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot"];

/**
 * SeaBIOS runs iPXE's ROM on an e1000, which takes its boot file from slirp's DHCP: a script on the
 * server at 10.0.2.2:PORT (slirp's name for the namespace's 127.0.0.1). The script fetches a kernel
 * and an initrd and boots Linux, whose /init prints the payload's sha256 and the command line.
 */
export function bootIpxe(server: ServerName, timeoutMs = 150_000): Promise<BootRun> {
  const port = 6969;
  const run: BootRun = { client: "iPXE (SeaBIOS)", card: "e1000", options: "script+kernel+initrd, slirp", server, seconds: NaN, problems: [], console: "", log: "", files: {} };
  return withWorkdir(async (_dir, root) => {
    const payload = randomBytes(1 << 20);
    const nonce = randomBytes(6).toString("hex");
    const url = `tftp://10.0.2.2:${port}`;
    await writeFile(join(root, "boot.ipxe"), `#!ipxe\nkernel ${url}/vmlinuz console=ttyS0 quiet panic=-1 emmer=${nonce}\ninitrd ${url}/initrd.gz\nboot\n`);
    await copyFile(KERNEL, join(root, "vmlinuz"));
    await writeFile(join(root, "initrd.gz"), buildInitrd(payload));
    await served(run, root, ["boot.ipxe", "vmlinuz", "initrd.gz"]);
    await withNetns(async (ns) => {
      ns.ip("addr", "add", "10.99.0.1/32", "dev", "lo"); // tftpd-hpa exits when 127.0.0.1 is the only address
      const s = await startServer(server, ns, root, "127.0.0.1", port);
      try {
        const t0 = process.hrtime.bigint();
        const qemu = startChild(ns.exec([
          QEMU_X86, "-M", "pc", "-m", "256", ...QEMU_COMMON, "-boot", "n",
          "-netdev", `user,id=n0,bootfile=${url}/boot.ipxe`, "-device", `e1000,netdev=n0,romfile=${IPXE_E1000_ROM}`,
        ]), timeoutMs);
        try {
          const m = await qemu.waitFor(new RegExp(`${INIT_MARKER}([0-9a-f]{64}) cmdline=([^\\r\\n]*)\\r?\\n`), timeoutMs, "/init's marker line");
          run.seconds = elapsed(t0);
          if (m[1] !== sha256(payload)) run.problems.push(`/init hashed the payload as ${m[1]}, not ${sha256(payload)}`);
          if (!m[2].split(" ").includes(`emmer=${nonce}`)) run.problems.push(`the kernel's command line "${m[2]}" is not the script's`);
        } catch (e) {
          run.problems.push((e as Error).message);
        }
        await finish(qemu, 20_000);
        run.console = plain(qemu.output());
      } finally {
        await s.stop();
        run.log = s.log();
      }
    });
    return run;
  });
}

/** A GRUB EFI image (grub-mkimage from Debian's modules) whose embedded config prints `nonce`, hashes a file it fetches itself, and halts. */
function buildGrub(out: string, dir: string, nonce: string): void {
  const cfg = join(dir, "embedded.cfg");
  const script = [
    `echo EMMER-GRUB started ${nonce}`,
    "sha256sum (tftp,$net_default_server)/payload.bin",
    "echo EMMER-GRUB done",
    "halt",
  ].join("\n");
  writeFileSync(cfg, `${script}\n`);
  const r = spawnSync("grub-mkimage", [
    "-O", "x86_64-efi", "-o", out, "-p", "(tftp)/grub", "-c", cfg,
    "echo", "net", "efinet", "tftp", "hashsum", "gcry_sha256", "halt", "normal",
  ], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`grub-mkimage failed: ${r.error?.message ?? r.stderr}`);
}

/** A tap device in `ns` with dnsmasq answering DHCP only (--port=0: no DNS) and pointing PXE at `server`'s file. */
async function dhcpOnTap(ns: Netns, dir: string, bootfile: string): Promise<Child> {
  ns.ip("tuntap", "add", "tap0", "mode", "tap");
  ns.ip("addr", "add", "10.98.0.1/24", "dev", "tap0");
  ns.ip("link", "set", "tap0", "up");
  const dnsmasq = startChild(ns.exec([
    "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--log-facility=-",
    "--interface=tap0", "--bind-interfaces", "--dhcp-range=10.98.0.10,10.98.0.50,255.255.255.0",
    `--dhcp-boot=${bootfile},,10.98.0.1`, `--dhcp-leasefile=${join(dir, "leases")}`, `--pid-file=${join(dir, "dnsmasq.pid")}`,
  ]), 600_000);
  await dnsmasq.waitFor(/DHCP, IP range/, 10_000, "dnsmasq's startup line");
  return dnsmasq;
}

/**
 * OVMF's own UEFI PXE (EDK2's PxeBcDxe over its VirtioNetDxe: the card's iPXE ROM is left out) takes
 * DHCP from dnsmasq on a tap device and loads GRUB from the server on port 69. GRUB prints the nonce
 * built into its image, fetches payload.bin over TFTP itself and prints its sha256.
 */
export function bootOvmf(server: ServerName, timeoutMs = 150_000): Promise<BootRun> {
  const run: BootRun = { client: "UEFI PXE (OVMF) + GRUB", card: "virtio-net", options: "port 69, tap+dnsmasq", server, seconds: NaN, problems: [], console: "", log: "", files: {} };
  return withWorkdir(async (dir, root) => {
    const payload = randomBytes(1 << 20);
    const nonce = randomBytes(6).toString("hex");
    buildGrub(join(root, "grubx64.efi"), dir, nonce);
    await writeFile(join(root, "payload.bin"), payload);
    await served(run, root, ["grubx64.efi", "payload.bin"]);
    const vars = join(dir, "vars.fd");
    await copyFile(OVMF_VARS, vars);
    await withNetns(async (ns) => {
      const dnsmasq = await dhcpOnTap(ns, dir, "grubx64.efi");
      const s = await startServer(server, ns, root, "10.98.0.1", 69).catch(async (e) => {
        await dnsmasq.stop();
        throw e;
      });
      try {
        const t0 = process.hrtime.bigint();
        const qemu = startChild(ns.exec([
          QEMU_X86, "-M", "q35", "-m", "256", ...QEMU_COMMON,
          "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,file=${vars}`,
          "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,romfile=,bootindex=1",
        ]), timeoutMs);
        try {
          await qemu.waitFor(new RegExp(`EMMER-GRUB started ${nonce}`), timeoutMs, "GRUB's first line");
          const m = await qemu.waitFor(/([0-9a-f]{64}) +\(tftp,[^)]*\)\/payload\.bin/, 30_000, "GRUB's sha256sum of payload.bin");
          await qemu.waitFor(/EMMER-GRUB done/, 10_000, "GRUB's last line");
          run.seconds = elapsed(t0);
          if (m[1] !== sha256(payload)) run.problems.push(`GRUB hashed payload.bin as ${m[1]}, not ${sha256(payload)}`);
        } catch (e) {
          run.problems.push((e as Error).message);
        }
        await finish(qemu, 20_000);
        run.console = plain(qemu.output());
      } finally {
        await s.stop();
        await dnsmasq.stop();
        run.log = s.log();
      }
    });
    return run;
  });
}

export interface UbootCase {
  blksize: number;
  /** U-Boot's tftpwindowsize; 1 is lock-step (U-Boot then asks for no windowsize) */
  windowsize: number;
  size: number;
  /** how long tftpboot gets before QEMU is killed */
  tftpTimeoutMs?: number;
}

/**
 * U-Boot (qemu_arm, on QEMU's "virt" board) with an e1000 behind slirp runs tftpboot from a server
 * outside slirp's subnet (10.99.0.1 on the namespace's lo: slirp sends it there through the
 * gateway), then crc32 over what it loaded.
 */
export function bootUboot(server: ServerName, c: UbootCase): Promise<BootRun> {
  const options = `blksize ${c.blksize}${c.windowsize > 1 ? ` windowsize ${c.windowsize}` : ""}, ${(c.size / 2 ** 20).toFixed(1)} MiB`;
  const run: BootRun = { client: "U-Boot tftpboot", card: "e1000", options, server, seconds: NaN, problems: [], console: "", log: "", files: {} };
  return withWorkdir(async (_dir, root) => {
    const file = randomBytes(c.size);
    await writeFile(join(root, "file.bin"), file);
    await served(run, root, ["file.bin"]);
    await withNetns(async (ns) => {
      ns.ip("addr", "add", "10.99.0.1/32", "dev", "lo");
      const s = await startServer(server, ns, root, "10.99.0.1", 69);
      try {
        const qemu = startChild(ns.exec([
          QEMU_ARM, "-M", "virt", "-m", "512", "-bios", UBOOT_ARM, ...QEMU_COMMON,
          "-netdev", "user,id=n0", "-device", "e1000,netdev=n0,romfile=",
        ]), 60_000 + (c.tftpTimeoutMs ?? 60_000));
        try {
          await qemu.waitFor(/Hit any key to stop autoboot/, 60_000, "U-Boot's autoboot prompt");
          qemu.send("\n");
          await qemu.waitFor(/=> $/, 10_000, "U-Boot's command prompt");
          const from = qemu.output().length;
          const cmd = [
            "setenv autoload no", "setenv netretry no",
            "setenv ipaddr 10.0.2.15", "setenv netmask 255.255.255.0", "setenv gatewayip 10.0.2.2", "setenv serverip 10.99.0.1",
            `setenv tftpblocksize ${c.blksize}`, `setenv tftpwindowsize ${c.windowsize}`,
            "if tftpboot ${kernel_addr_r} file.bin; then echo EMMER-TFTP-OK; crc32 ${kernel_addr_r} ${filesize}; else echo EMMER-TFTP-FAILED; fi",
            "poweroff",
          ].join("; ");
          const t0 = process.hrtime.bigint();
          qemu.send(`${cmd}\n`);
          // U-Boot echoes the command line, markers and all: look only past the echo.
          const echo = await qemu.waitFor(/poweroff\r?\n/, 10_000, "U-Boot's echo of the command", from);
          const after = (echo.index ?? 0) + echo[0].length;
          const result = await qemu.waitFor(/EMMER-TFTP-(OK|FAILED)/, c.tftpTimeoutMs ?? 60_000, "the end of tftpboot", after);
          run.seconds = elapsed(t0);
          if (result[1] !== "OK") {
            const said = qemu.output().slice(after, result.index).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
            throw new Error(`tftpboot failed after ${run.seconds.toFixed(1)} s: ${said.slice(-2).join(" / ")}`);
          }
          const crc = await qemu.waitFor(/crc32 for [0-9a-f]+ \.\.\. [0-9a-f]+ ==> ([0-9a-f]{8})/, 10_000, "crc32's result", after);
          const want = crc32(file).toString(16).padStart(8, "0");
          if (crc[1] !== want) run.problems.push(`U-Boot's crc32 is ${crc[1]}, the file's ${want}`);
          const got = /Bytes transferred = (\d+)/.exec(qemu.output().slice(after));
          if (Number(got?.[1]) !== c.size) run.problems.push(`U-Boot loaded ${got?.[1]} bytes, not ${c.size}`);
        } catch (e) {
          run.problems.push((e as Error).message);
        }
        await finish(qemu, 10_000);
        run.console = plain(qemu.output());
      } finally {
        await s.stop();
        run.log = s.log();
      }
    });
    return run;
  });
}
