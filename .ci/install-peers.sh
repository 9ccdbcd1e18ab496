#!/usr/bin/env bash
# Installs the real TFTP peers used by the interop tests (tests/support/peers.ts):
#   tftp-hpa (client), tftpd-hpa (reference server, started by the tests
#   themselves on a high port), atftp (client), busybox (tftp applet), curl.
# Idempotent and non-interactive; run as root (or with sudo) on Debian/Ubuntu.
#
# tftpd-hpa's postinst starts a system server on 0.0.0.0:69 (/srv/tftp) through
# invoke-rc.d. The tests never use port 69, so policy-rc.d below stops the
# package from starting (or failing to start: no systemd in containers) any
# service during this install; if a system tftpd already runs on port 69 we
# leave it alone and say so.
set -euo pipefail

packages=(tftp-hpa tftpd-hpa atftp busybox curl)
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-peers: installing ${missing[*]}"
  # Package lists on a fresh machine may be missing or stale: refresh them before installing.
  $SUDO apt-get update -q

  # Keep maintainer scripts from starting services (exit 101 = "not allowed"),
  # unless a policy-rc.d is already there; remove ours afterwards.
  policy=/usr/sbin/policy-rc.d
  ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    ours=1
  fi
  cleanup() { if [ "$ours" -eq 1 ]; then $SUDO rm -f "$policy"; fi; }
  trap cleanup EXIT

  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  cleanup
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

if command -v ss >/dev/null && ss -Hlun 'sport = :69' 2>/dev/null | grep -q .; then
  echo "install-peers: note: something (likely the system tftpd-hpa) listens on UDP port 69; tests do not use it"
fi
echo "install-peers: ok"
