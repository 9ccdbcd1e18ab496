# Sourced by the install scripts: installs Debian packages that are missing,
# non-interactively, without letting their maintainer scripts start services.
#
# Packages such as tftpd-hpa start a daemon from their postinst through
# invoke-rc.d ("invoke-rc.d tftpd-hpa start || exit 1"), which fails the whole
# install when the daemon cannot start (no init system in a container, port 69
# taken). A policy-rc.d that exits 101 ("action forbidden") makes invoke-rc.d
# skip the start and return 0. Any existing policy-rc.d is put back afterwards.

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

apt_updated=""
# Package lists on a fresh machine may be missing or stale: refresh them once per script.
apt_update() {
  [ -n "$apt_updated" ] || { $SUDO apt-get update -q; apt_updated=1; }
}

# apt_install_missing NAME PACKAGE...: installs those of PACKAGE not installed yet; NAME prefixes messages.
apt_install_missing() {
  local name=$1
  shift
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$name: all of $* already installed"
    return 0
  fi
  echo "$name: installing ${missing[*]}"
  apt_update
  local policy=/usr/sbin/policy-rc.d
  local backup="$policy.$name.bak"
  if [ -e "$policy" ]; then $SUDO mv -f "$policy" "$backup"; fi
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  local status=0
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" || status=$?
  $SUDO rm -f "$policy"
  if [ -e "$backup" ]; then $SUDO mv -f "$backup" "$policy"; fi
  return "$status"
}
