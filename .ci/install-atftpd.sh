#!/usr/bin/env bash
# atftpd, a peer server for tests/client_cli.test.ts and the benchmarks. Its package
# conflicts with tftpd-hpa's, so it is unpacked into bench/.peers/atftpd (apt-get
# download + dpkg -x) rather than installed; nothing else on the system changes.
# Debian/Ubuntu; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

dest=bench/.peers/atftpd
if [ -x "$dest/usr/sbin/atftpd" ]; then
  echo "atftpd: already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt's download user (_apt) writes into it
(cd "$tmp" && { apt-get download atftpd >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && apt-get download atftpd; }; })
mkdir -p "$dest"
dpkg -x "$tmp"/atftpd_*.deb "$dest"
"$dest/usr/sbin/atftpd" --help 2>&1 | grep -q atftp || { echo "install-atftpd: $dest/usr/sbin/atftpd does not run" >&2; exit 1; }
echo "atftpd: unpacked into $dest"
