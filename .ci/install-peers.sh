#!/usr/bin/env bash
# Installs the real TFTP peers used by the interop tests (tests/support/peers.ts):
#   tftp-hpa (client), tftpd-hpa (reference server, started by the tests
#   themselves on a high port), atftp (client), busybox's tftp applet (from
#   busybox-static: the boot tests' initrd needs a static busybox), curl;
#   iproute2 and nftables for tests/scaleout.test.ts (namespaces, a DNAT balancer);
#   systemd for systemd-socket-activate (tests/operations.test.ts: socket activation);
#   atftpd (a server with windowsize) unpacked into bench/.peers by install-atftpd.sh.
# Idempotent and non-interactive; run as root (or with sudo) on Debian/Ubuntu.
#
# tftpd-hpa's postinst starts a system server on 0.0.0.0:69 (/srv/tftp). The
# tests never use it, so apt.sh keeps the package from starting (or failing to
# start: no init in containers, port 69 busy) any service during this install.
# A system tftpd that already runs on port 69 is left alone and reported.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

apt_install_missing install-peers tftp-hpa tftpd-hpa atftp busybox-static curl iproute2 nftables systemd

# Check what the tests look for.
tftp -V 2>&1 | grep -q tftp-hpa || { echo "install-peers: tftp is not tftp-hpa" >&2; exit 1; }
command -v atftp >/dev/null || { echo "install-peers: atftp missing" >&2; exit 1; }
busybox --list | grep -qx tftp || { echo "install-peers: busybox has no tftp applet" >&2; exit 1; }
curl -V | grep -q '^Protocols:.*tftp' || { echo "install-peers: curl without tftp" >&2; exit 1; }
[ -x /usr/sbin/in.tftpd ] || { echo "install-peers: /usr/sbin/in.tftpd missing" >&2; exit 1; }
command -v ip >/dev/null && command -v nft >/dev/null || { echo "install-peers: ip or nft missing" >&2; exit 1; }
command -v systemd-socket-activate >/dev/null || { echo "install-peers: systemd-socket-activate missing" >&2; exit 1; }

if command -v ss >/dev/null && ss -Hlun 'sport = :69' 2>/dev/null | grep -q .; then
  echo "install-peers: note: something (likely the system tftpd-hpa) listens on UDP port 69; tests do not use it"
fi
bash "$(dirname "$0")/install-atftpd.sh"
echo "install-peers: ok"
