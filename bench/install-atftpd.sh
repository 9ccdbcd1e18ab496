#!/usr/bin/env bash
# atftpd (a peer server for the benchmarks) conflicts with tftpd-hpa as a Debian
# package, so it is unpacked into bench/.peers/atftpd instead of installed.
set -euo pipefail
cd "$(dirname "$0")"
dest=.peers/atftpd
if [ -x "$dest/usr/sbin/atftpd" ]; then echo "atftpd: already in bench/$dest"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download atftpd >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download atftpd; })
mkdir -p "$dest"
dpkg -x "$tmp"/atftpd_*.deb "$dest"
"$dest/usr/sbin/atftpd" --help >/dev/null 2>&1 || true
echo "atftpd: unpacked into bench/$dest"
