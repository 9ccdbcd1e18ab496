#!/usr/bin/env bash
# Installs what the boot tests (tests/boot/) need: QEMU, the firmware they
# boot (SeaBIOS with iPXE's ROM, OVMF, U-Boot), GRUB's EFI modules, a static
# busybox for the initrd, dnsmasq for DHCP on a tap device, iproute2 for the
# network namespaces; and a Linux kernel to boot, taken from Debian's
# linux-image-amd64 with apt-get download + dpkg-deb (installing it would run
# initramfs and bootloader hooks nobody needs) and kept as
# $EMMER_BOOT_CACHE/vmlinuz (default /var/cache/emmer-boot/vmlinuz).
# Idempotent and non-interactive; run as root (or with sudo) on Debian 12.
#
# dnsmasq-base, not dnsmasq: the tests start their own DHCP-only dnsmasq in a
# namespace; the dnsmasq package would add a system service. apt.sh keeps any
# package's maintainer scripts from starting services during the install.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

cache="${EMMER_BOOT_CACHE:-/var/cache/emmer-boot}"
# busybox-static replaces busybox (same /bin/busybox, tftp applet included).
apt_install_missing install-boot qemu-system-x86 qemu-system-arm ipxe-qemu seabios ovmf u-boot-qemu \
  grub-efi-amd64-bin busybox-static dnsmasq-base iproute2

# The kernel: whatever linux-image-amd64 depends on now (linux-image-6.x-amd64).
if [ -s "$cache/vmlinuz" ]; then
  echo "install-boot: kernel already in $cache/vmlinuz"
else
  apt_update
  image=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
  [ -n "$image" ] || { echo "install-boot: cannot tell which kernel linux-image-amd64 depends on" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$image")
  dpkg-deb --fsys-tarfile "$tmp"/"$image"_*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
  $SUDO mkdir -p "$cache"
  $SUDO install -m 644 "$tmp"/boot/vmlinuz-* "$cache/vmlinuz.new"
  $SUDO mv -f "$cache/vmlinuz.new" "$cache/vmlinuz"
  rm -rf "$tmp"
  trap - EXIT
  echo "install-boot: kernel from $image in $cache/vmlinuz"
fi

# Check what the tests look for.
for cmd in qemu-system-x86_64 qemu-system-arm grub-mkimage dnsmasq ip; do
  command -v "$cmd" >/dev/null || { echo "install-boot: $cmd missing" >&2; exit 1; }
done
for f in /usr/lib/ipxe/qemu/efi-e1000.rom /usr/share/seabios/bios-256k.bin /usr/share/OVMF/OVMF_CODE_4M.fd \
  /usr/share/OVMF/OVMF_VARS_4M.fd /usr/lib/u-boot/qemu_arm/u-boot.bin /usr/lib/grub/x86_64-efi/efinet.mod; do
  [ -e "$f" ] || { echo "install-boot: $f missing" >&2; exit 1; }
done
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
if command -v readelf >/dev/null && ! file_is_static /bin/busybox; then
  echo "install-boot: /bin/busybox is not static (busybox-static)" >&2
  exit 1
fi
echo "install-boot: ok"
