#!/usr/bin/env bash
# Installs the real TFTP peers used by the interop tests (tests/support/peers.ts):
#   tftp-hpa (client), tftpd-hpa (reference server, started by the tests
#   themselves on a high port), atftp (client), busybox (tftp applet), curl;
#   and iproute2 and nftables for tests/scaleout.test.ts (namespaces, a DNAT balancer);
#   atftpd (a server with windowsize) unpacked into bench/.peers by install-atftpd.sh.
# Idempotent and non-interactive; run as root (or with sudo) on Debian/Ubuntu.
#
# tftpd-hpa's postinst starts a system server on 0.0.0.0:69 (/srv/tftp) through
# invoke-rc.d. The tests never use port 69, so policy-rc.d below stops the
# package from starting (or failing to start: no init in containers, port 69
# busy) any service during this install. A system tftpd that already runs on
# port 69 is left alone and reported.
set -euo pipefail

packages=(tftp-hpa tftpd-hpa atftp busybox curl iproute2 nftables)
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${packages[@]}"; do
  # busybox-static has the same applets, and installing busybox would remove it
  if [ "$p" = busybox ] && installed busybox-static; then continue; fi
  if ! installed "$p"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-peers: installing ${missing[*]}"
  # Package lists on a fresh machine may be missing or stale: refresh them before installing.
  $SUDO apt-get update -q

  # Keep maintainer scripts from starting services: tftpd-hpa's postinst does
  # "invoke-rc.d tftpd-hpa start || exit 1", which fails the whole install when
  # the daemon cannot start (no init system, port 69 taken). A policy-rc.d
  # that exits 101 ("action forbidden") makes invoke-rc.d skip it and return 0.
  # Any existing policy-rc.d is put back afterwards.
  policy=/usr/sbin/policy-rc.d
  backup="$policy.install-peers.bak"
  if [ -e "$policy" ]; then $SUDO mv -f "$policy" "$backup"; fi
  restore() {
    $SUDO rm -f "$policy"
    if [ -e "$backup" ]; then $SUDO mv -f "$backup" "$policy"; fi
  }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"

  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  restore
  trap - EXIT
else
  echo "install-peers: all of ${packages[*]} already installed"
fi

# Check what the tests look for.
tftp -V 2>&1 | grep -q tftp-hpa || { echo "install-peers: tftp is not tftp-hpa" >&2; exit 1; }
command -v atftp >/dev/null || { echo "install-peers: atftp missing" >&2; exit 1; }
busybox --list | grep -qx tftp || { echo "install-peers: busybox has no tftp applet" >&2; exit 1; }
curl -V | grep -q '^Protocols:.*tftp' || { echo "install-peers: curl without tftp" >&2; exit 1; }
[ -x /usr/sbin/in.tftpd ] || { echo "install-peers: /usr/sbin/in.tftpd missing" >&2; exit 1; }
command -v ip >/dev/null && command -v nft >/dev/null || { echo "install-peers: ip or nft missing" >&2; exit 1; }

if command -v ss >/dev/null && ss -Hlun 'sport = :69' 2>/dev/null | grep -q .; then
  echo "install-peers: note: something (likely the system tftpd-hpa) listens on UDP port 69; tests do not use it"
fi
bash "$(dirname "$0")/install-atftpd.sh"
echo "install-peers: ok"
