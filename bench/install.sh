#!/usr/bin/env bash
# What the benchmarks use beyond the test peers (.ci/install-peers.sh installs
# those: tftpd-hpa, tftp-hpa, atftp, busybox, curl). Debian/Ubuntu, as root or
# with sudo; idempotent.
#  - atftpd, a peer server: it conflicts with tftpd-hpa as a package, so it is
#    unpacked into bench/.peers/atftpd instead of installed (.ci/install-atftpd.sh,
#    which CI runs too: tests/client_cli.test.ts uses it);
#  - perf (linux-perf), for bench/cpu.mjs's split of Emmer's samples (without
#    it that part says "skipped").
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
updated=""
update() { [ -n "$updated" ] || { $SUDO apt-get update -q >/dev/null; updated=1; }; }

bash ../.ci/install-atftpd.sh

if command -v perf >/dev/null; then
  echo "perf: already installed"
else
  update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf
  echo "perf: installed"
fi
