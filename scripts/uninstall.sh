#!/usr/bin/env bash
# Remove Pingjia from a device: `sudo scripts/uninstall.sh [--purge]` or `sudo make uninstall`.
#
# Stops and disables the services and removes what scripts/install.sh put in place: the
# units, /opt/pingjia, /usr/local/bin/pingjia, the udev rule and the i2c-dev module
# file. The records (/var/lib/pingjia) and the settings, token and device secret
# (/etc/pingjia) stay unless --purge is given; --purge also removes the `pingjia` user
# and the `pingjia-admin` group. Records not yet delivered are lost with --purge: export them first
# (`pingjia outbox export --to DIR`).
#
# I2C and SPI stay switched on in config.txt (other hardware may use them), and the
# Debian packages stay installed.
#
# PINGJIA_ROOT and PINGJIA_SKIP work as for scripts/install.sh.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
ROOT=${PINGJIA_ROOT:-}
ROOT=${ROOT%/}
PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $arg (only --purge)" >&2; exit 2 ;;
  esac
done

UNITS=(pingjia-terminal.service pingjia-agent.service)
UNIT_DIR=$ROOT/etc/systemd/system

say() { printf '  %-34s %s\n' "$1" "$2"; }
live() { [ -z "$ROOT" ] && ! skipping "$1"; }
remove() {  # remove NAME PATH...: rm -rf what exists
  local any=0 p
  for p in "${@:2}"; do
    if [ -e "$p" ] || [ -L "$p" ]; then rm -rf "$p"; any=1; fi
  done
  if [ "$any" -eq 1 ]; then say "$1" "removed"; else say "$1" "unchanged (not there)"; fi
}

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root (sudo), or set PINGJIA_ROOT" >&2
  exit 1
fi
echo "Removing Pingjia${ROOT:+ from $ROOT}"

if ! live systemctl; then
  say "services" "skipped (${ROOT:+scratch root}${ROOT:-PINGJIA_SKIP})"
elif systemd_live; then
  systemctl disable --now --quiet "${UNITS[@]}" 2>/dev/null || true
  say "services" "stopped and disabled"
elif command -v systemctl >/dev/null; then
  # an image or a chroot: only the links, offline
  SYSTEMD_OFFLINE=1 systemctl --root=/ disable --quiet "${UNITS[@]}" 2>/dev/null || true
  say "services" "disabled (systemd not running: nothing to stop)"
fi
wants=()
for u in "${UNITS[@]}"; do wants+=("$UNIT_DIR/multi-user.target.wants/$u"); done
remove "unit links" "${wants[@]}"
remove "systemd units" "${UNITS[@]/#/$UNIT_DIR/}"
if live systemctl && systemd_live; then systemctl daemon-reload || true; fi
remove "virtualenv /opt/pingjia" "$ROOT/opt/pingjia"
if [ -z "$ROOT" ] && [ "$(readlink /usr/local/bin/pingjia 2>/dev/null)" = /opt/pingjia/venv/bin/pingjia ]; then
  remove "/usr/local/bin/pingjia" /usr/local/bin/pingjia
fi
remove "udev rule" "$ROOT/etc/udev/rules.d/99-pingjia-reader.rules"
if live udev && systemd_live && command -v udevadm >/dev/null; then udevadm control --reload-rules || true; fi
remove "module i2c-dev at boot" "$ROOT/etc/modules-load.d/pingjia.conf"

if [ "$PURGE" -eq 1 ]; then
  remove "records /var/lib/pingjia" "$ROOT/var/lib/pingjia"
  remove "settings and secret /etc/pingjia" "$ROOT/etc/pingjia"
  if live useradd && getent passwd pingjia >/dev/null; then
    userdel pingjia
    say "user pingjia" "removed"
  fi
  if live useradd && getent group pingjia-admin >/dev/null; then
    groupdel pingjia-admin
    say "group pingjia-admin" "removed"
  fi
else
  [ -e "$ROOT/var/lib/pingjia" ] && say "records /var/lib/pingjia" "kept (--purge removes them)"
  [ -e "$ROOT/etc/pingjia" ] && say "settings and secret /etc/pingjia" "kept (--purge removes them)"
fi
echo "I2C/SPI stay on in config.txt; the Debian packages stay installed."
