#!/usr/bin/env bash
# Install Pingjia on a Raspberry Pi (Raspberry Pi OS, run as root): `sudo scripts/install.sh`
# or `sudo make install`. See docs/install.md.
#
# What it does, each step printed as "changed", "unchanged" or "skipped":
#   Debian packages (CJK bitmap fonts, python3-venv, lgpio, i2c-tools); the `pingjia`
#   system user in the gpio, i2c, spi, dialout and audio groups; a virtualenv in /opt/pingjia
#   with this project installed and /usr/local/bin/pingjia; /etc/pingjia/pingjia.toml
#   from config/pingjia.toml (only when absent: never overwritten); a local API token and
#   a device secret (only when absent); the systemd units, enabled; I2C and SPI switched
#   on with the I2C bus at 400 kHz; the udev name /dev/pingjia-reader (and /dev/idcard)
#   for the ID-card reader. Then advice on sparing the SD card.
#
# Running it again changes nothing that is already in place.
#
# For tests and image builds:
#   PINGJIA_ROOT=/some/dir   install every file under that directory instead of /.
#                            Nothing on the running system is touched: apt, useradd,
#                            systemctl (except `--root` enabling), udevadm and modprobe
#                            are skipped.
#   PINGJIA_SKIP="apt useradd venv systemctl udev"
#                            skip those steps (any subset).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${PINGJIA_ROOT:-}
ROOT=${ROOT%/}
SKIP=" ${PINGJIA_SKIP:-} "

APT_PACKAGES=(fonts-unifont xfonts-wqy python3 python3-venv python3-pip python3-lgpio liblgpio1 i2c-tools alsa-utils)
SERVICE_USER=pingjia
HW_GROUPS=(gpio i2c spi dialout audio)
UNITS=(pingjia-terminal.service pingjia-agent.service)
I2C_BAUD=400000

ETC=$ROOT/etc/pingjia
CONFIG=$ETC/pingjia.toml
TOKEN_FILE=$ETC/api-token
SECRET_FILE=$ETC/secret
STATE=$ROOT/var/lib/pingjia
OPT=$ROOT/opt/pingjia
VENV=$OPT/venv
UNIT_DIR=$ROOT/etc/systemd/system
UDEV_RULE=$ROOT/etc/udev/rules.d/99-pingjia-reader.rules
MODULES_FILE=$ROOT/etc/modules-load.d/pingjia.conf

REBOOT_NEEDED=0
RESTART_NEEDED=0
FRESH_CONFIG=0

say() { printf '  %-26s %s\n' "$1" "$2"; }
die() { echo "install.sh: $*" >&2; exit 1; }
skipping() { [[ "$SKIP" == *" $1 "* ]]; }

# A step that acts on the running system: not under a scratch root, not when skipped.
live() {
  if [ -n "$ROOT" ]; then say "$2" "skipped (scratch root $ROOT)"; return 1; fi
  if skipping "$1"; then say "$2" "skipped (PINGJIA_SKIP)"; return 1; fi
  return 0
}

# chown only on the real system, as root (a scratch root has no such user)
own() {
  if [ -z "$ROOT" ] && [ "$(id -u)" -eq 0 ] && getent group "${1#*:}" >/dev/null; then
    chown "$1" "$2"
  fi
}

# put_file SRC DEST MODE: write DEST only when its content differs; sets CHANGED
put_file() {
  CHANGED=0
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    return 0
  fi
  mkdir -p "$(dirname "$2")"
  local tmp
  tmp=$(mktemp "$2.XXXXXX")
  cat "$1" >"$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
  CHANGED=1
}

# put_text TEXT DEST MODE
put_text() {
  local tmp
  tmp=$(mktemp)
  printf '%s\n' "$1" >"$tmp"
  put_file "$tmp" "$2" "$3"
  rm -f "$tmp"
}

ensure_dir() {  # ensure_dir PATH MODE OWNER -> prints nothing, sets CHANGED
  CHANGED=0
  if [ ! -d "$1" ]; then
    mkdir -p "$1"
    CHANGED=1
  fi
  if [ "$(stat -c %a "$1")" != "${2#0}" ]; then
    chmod "$2" "$1"
    CHANGED=1
  fi
  own "$3" "$1"
}

outcome() {  # outcome NAME [WHAT CHANGED...]: unchanged when nothing is given
  if [ $# -eq 1 ]; then say "$1" "unchanged"; else say "$1" "changed (${*:2})"; fi
}

report() {  # report NAME [what changed]
  if [ "$CHANGED" -eq 1 ]; then say "$1" "changed${2:+ ($2)}"; else say "$1" "unchanged"; fi
}

random_hex() {  # random_hex BYTES
  od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# --- the steps --------------------------------------------------------------------------

step_packages() {
  live apt "Debian packages" || return 0
  command -v dpkg-query >/dev/null || { say "Debian packages" "skipped (no dpkg: not Debian)"; return 0; }
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "Debian packages" "unchanged"; return 0; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  say "Debian packages" "changed (installed ${missing[*]})"
}

step_user() {
  live useradd "user and groups" || return 0
  local made=() g
  for g in "${HW_GROUPS[@]}"; do
    getent group "$g" >/dev/null || { groupadd --system "$g"; made+=("group $g"); }
  done
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/pingjia --no-create-home \
      --shell /usr/sbin/nologin --comment "Pingjia evaluator services" "$SERVICE_USER"
    made+=("user $SERVICE_USER")
  fi
  for g in "${HW_GROUPS[@]}"; do
    if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then
      usermod -aG "$g" "$SERVICE_USER"
      made+=("+$g")
    fi
  done
  outcome "user and groups" "${made[@]}"
}

step_dirs() {
  local any=0
  ensure_dir "$ETC" 0755 root:root; any=$((any | CHANGED))
  ensure_dir "$STATE" 0750 "$SERVICE_USER:$SERVICE_USER"; any=$((any | CHANGED))
  ensure_dir "$OPT" 0755 root:root; any=$((any | CHANGED))
  CHANGED=$any
  report "directories"
}

source_stamp() {
  (cd "$SRC" && find setup.py README.md agent config drivers terminal -type f \
      ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
      | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

step_venv() {
  if skipping venv; then say "virtualenv" "skipped (PINGJIA_SKIP)"; return 0; fi
  local stamp="$OPT/installed-from" want changed=()
  want=$(source_stamp)
  if [ ! -x "$VENV/bin/python" ]; then
    # system site packages: python3-lgpio comes from Debian (it needs the C library)
    python3 -m venv --system-site-packages "$VENV"
    changed+=("created")
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade "$SRC"
    printf '%s\n' "$want" >"$stamp"
    changed+=("installed $SRC")
    RESTART_NEEDED=1
  fi
  if [ -z "$ROOT" ] && [ "$(readlink /usr/local/bin/pingjia 2>/dev/null)" != "$VENV/bin/pingjia" ]; then
    ln -sfn "$VENV/bin/pingjia" /usr/local/bin/pingjia
    changed+=("/usr/local/bin/pingjia")
  fi
  outcome "virtualenv" "${changed[@]}"
}

step_config() {
  if [ -f "$CONFIG" ]; then
    say "settings" "unchanged ($CONFIG kept as it is)"
    return 0
  fi
  local tmp
  tmp=$(mktemp)
  # the default file, with the local API token kept in its own file (made below)
  sed 's|^token_file = ""|token_file = "/etc/pingjia/api-token"|' "$SRC/config/pingjia.toml" >"$tmp"
  grep -q '^token_file = "/etc/pingjia/api-token"' "$tmp" || die "config/pingjia.toml has no token_file line"
  put_file "$tmp" "$CONFIG" 0640
  rm -f "$tmp"
  own "root:$SERVICE_USER" "$CONFIG"
  FRESH_CONFIG=1
  say "settings" "changed ($CONFIG: the default; set device.id and site.* before use)"
}

step_token() {
  if [ -f "$TOKEN_FILE" ]; then say "local API token" "unchanged"; return 0; fi
  (umask 027 && random_hex 24 >"$TOKEN_FILE")
  chmod 0640 "$TOKEN_FILE"
  own "root:$SERVICE_USER" "$TOKEN_FILE"
  say "local API token" "changed ($TOKEN_FILE generated; the window PC needs it)"
}

step_secret() {
  if [ -f "$SECRET_FILE" ]; then
    if [ "$(stat -c %a "$SECRET_FILE")" != "600" ]; then
      chmod 0600 "$SECRET_FILE"
      say "device secret" "changed ($SECRET_FILE mode set to 0600)"
    else
      say "device secret" "unchanged"
    fi
    return 0
  fi
  # root only: the services get it as a systemd credential (LoadCredential=)
  (umask 077 && random_hex 32 >"$SECRET_FILE")
  chmod 0600 "$SECRET_FILE"
  own root:root "$SECRET_FILE"
  say "device secret" "changed ($SECRET_FILE generated; \`pingjia enroll\` replaces it)"
}

step_units() {
  local u any=0 what=()
  for u in "${UNITS[@]}"; do
    put_file "$SRC/systemd/$u" "$UNIT_DIR/$u" 0644
    if [ "$CHANGED" -eq 1 ]; then any=1; what+=("$u"); fi
  done
  CHANGED=$any
  [ "$any" -eq 0 ] || RESTART_NEEDED=1
  report "systemd units" "${what[*]:-}"
  if [ "$any" -eq 1 ] && [ -z "$ROOT" ] && ! skipping systemctl; then
    systemctl daemon-reload
  fi
}

step_enable() {
  local u wants="$UNIT_DIR/multi-user.target.wants" what=()
  for u in "${UNITS[@]}"; do
    if [ "$(readlink "$wants/$u" 2>/dev/null)" = "/etc/systemd/system/$u" ]; then
      continue
    fi
    if [ -z "$ROOT" ] && ! skipping systemctl; then
      systemctl enable --quiet "$u"
    else
      # what `systemctl enable` does: the [Install] WantedBy= link
      mkdir -p "$wants"
      ln -sfn "/etc/systemd/system/$u" "$wants/$u"
    fi
    what+=("$u")
  done
  outcome "units enabled" "${what[@]}"
}

boot_config() {
  if [ -f "$ROOT/boot/firmware/config.txt" ]; then echo "$ROOT/boot/firmware/config.txt"
  elif [ -f "$ROOT/boot/config.txt" ]; then echo "$ROOT/boot/config.txt"
  fi
}

# config.txt with dtparam=i2c_arm=on, spi=on and i2c_arm_baudrate set where they apply
# to every board: an existing setting (global or [all]) is corrected in place, a
# commented-out default line is switched on, anything else goes under an [all] section.
edit_boot_config() {
  awk -v want="i2c_arm=on spi=on i2c_arm_baudrate=$I2C_BAUD" '
    BEGIN { n = split(want, w, " ")
            for (i = 1; i <= n; i++) { split(w[i], kv, "="); val[kv[1]] = kv[2]; order[i] = kv[1] } }
    {
      line[NR] = $0
      if ($0 ~ /^[[:space:]]*\[.*\][[:space:]]*$/) {
        s = $0; gsub(/[][[:space:]]/, "", s); scope = tolower(s); last = scope; next
      }
      if (scope != "" && scope != "all") next
      if ($0 ~ /^[[:space:]]*dtparam=/) {
        rest = $0; sub(/^[[:space:]]*dtparam=/, "", rest)
        m = split(rest, ps, ","); out = ""; chg = 0
        for (j = 1; j <= m; j++) {
          k = ps[j]; v = ""; eq = index(k, "=")
          if (eq) { v = substr(k, eq + 1); k = substr(k, 1, eq - 1) }
          if (k in val) { found[k] = 1; if (v != val[k]) { ps[j] = k "=" val[k]; chg = 1 } }
          out = out (j > 1 ? "," : "") ps[j]
        }
        if (chg) line[NR] = "dtparam=" out
      } else if ($0 ~ /^#[[:space:]]*dtparam=[a-z0-9_]+=[^,]*$/) {
        k = $0; sub(/^#[[:space:]]*dtparam=/, "", k); sub(/=.*/, "", k)
        if ((k in val) && !(k in commented)) commented[k] = NR
      }
    }
    END {
      for (k in commented) if (!(k in found)) { line[commented[k]] = "dtparam=" k "=" val[k]; found[k] = 1 }
      for (i = 1; i <= NR; i++) print line[i]
      added = 0
      for (i = 1; i <= n; i++) {
        k = order[i]
        if (k in found) continue
        if (!added) {
          if (last != "" && last != "all") print "[all]"
          print "# pingjia (scripts/install.sh): I2C for the display at 400 kHz, SPI"
          added = 1
        }
        print "dtparam=" k "=" val[k]
      }
    }' "$1"
}

step_i2c_spi() {
  local file tmp
  file=$(boot_config)
  if [ -z "$file" ]; then
    say "I2C/SPI in config.txt" "skipped (no /boot/firmware/config.txt: not a Raspberry Pi?)"
    return 0
  fi
  tmp=$(mktemp)
  edit_boot_config "$file" >"$tmp"
  if cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    say "I2C/SPI in config.txt" "unchanged"
  else
    cp "$file" "$tmp.orig"
    # in place (cat, not mv): /boot/firmware is FAT, and the file keeps its owner and mode
    cat "$tmp" >"$file"
    sync "$file" 2>/dev/null || sync
    rm -f "$tmp" "$tmp.orig"
    REBOOT_NEEDED=1
    say "I2C/SPI in config.txt" "changed ($file: i2c_arm, spi, i2c_arm_baudrate=$I2C_BAUD)"
  fi
  put_text "# Pingjia: /dev/i2c-* for the display (scripts/install.sh)
i2c-dev" "$MODULES_FILE" 0644
  report "module i2c-dev at boot"
  if [ "$CHANGED" -eq 1 ] && [ -z "$ROOT" ]; then modprobe i2c-dev 2>/dev/null || true; fi
}

UDEV_TEXT='# Pingjia: a stable name for the ID-card reader (scripts/install.sh; docs/install.md).
# Most serial ID-card readers sit behind one of these USB-serial chips. Each match
# names the port /dev/pingjia-reader (the default reader.port) and /dev/idcard.
# Another device with the same chip would take the name too: then narrow the match
# with its serial number (udevadm info -a -n /dev/ttyUSB0 | grep serial) and add
# ATTRS{serial}=="...", or set reader.port to its /dev/serial/by-id/ name.
# Put your own rule in 98-pingjia-reader-local.rules: this file is replaced on install.
SUBSYSTEM!="tty", GOTO="pingjia_reader_end"
# WCH CH340 / CH341
ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", GOTO="pingjia_reader"
# WCH CH9102
ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="55d4", GOTO="pingjia_reader"
# Prolific PL2303
ATTRS{idVendor}=="067b", ATTRS{idProduct}=="2303", GOTO="pingjia_reader"
# Silicon Labs CP210x
ATTRS{idVendor}=="10c4", ATTRS{idProduct}=="ea60", GOTO="pingjia_reader"
# FTDI FT232R
ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", GOTO="pingjia_reader"
GOTO="pingjia_reader_end"
LABEL="pingjia_reader"
SYMLINK+="pingjia-reader", SYMLINK+="idcard", GROUP="dialout", MODE="0660"
LABEL="pingjia_reader_end"'

step_udev() {
  put_text "$UDEV_TEXT" "$UDEV_RULE" 0644
  report "udev rule (reader name)"
  if [ "$CHANGED" -eq 1 ] && [ -z "$ROOT" ] && ! skipping udev && command -v udevadm >/dev/null; then
    udevadm control --reload-rules || true
    udevadm trigger --subsystem-match=tty || true
  fi
}

step_restart() {
  live systemctl "running services" || return 0
  if [ "$RESTART_NEEDED" -eq 0 ]; then say "running services" "unchanged"; return 0; fi
  # only services already running are restarted: a fresh device is configured first
  systemctl try-restart "${UNITS[@]}"
  say "running services" "changed (restarted those that were running)"
}

advice() {
  local journald="$ROOT/etc/systemd/journald.conf"
  echo
  echo "To spare the SD card (advice; nothing changed):"
  if ! grep -qs '^Storage=volatile' "$journald" "$ROOT"/etc/systemd/journald.conf.d/*.conf; then
    cat <<'EOF'
  - keep the journal in RAM (logs are then lost at reboot):
      mkdir -p /etc/systemd/journald.conf.d
      printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' \
        > /etc/systemd/journald.conf.d/volatile.conf
      systemctl restart systemd-journald
EOF
  else
    echo "  - the journal is already volatile (Storage=volatile)"
  fi
  echo "  - once the device works, make the root file system read-only with an overlay:"
  echo "    raspi-config nonint enable_overlayfs (or raspi-config > Performance > Overlay File"
  echo "    System). /var/lib/pingjia must then live on a writable partition: see docs/install.md."
}

main() {
  if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo scripts/install.sh), or set PINGJIA_ROOT for a scratch install"
  fi
  [ -f "$SRC/config/pingjia.toml" ] || die "run from a Pingjia source tree ($SRC has no config/pingjia.toml)"
  echo "Installing Pingjia from $SRC${ROOT:+ into $ROOT}"
  umask 022
  step_packages
  step_user
  step_dirs
  step_venv
  step_config
  step_token
  step_secret
  step_units
  step_enable
  step_i2c_spi
  step_udev
  step_restart
  advice
  echo
  if [ "$FRESH_CONFIG" -eq 1 ]; then
    echo "Next: set device.id, site.window_no and the rest in $CONFIG"
    echo "      (pingjia config set KEY VALUE; pingjia config validate), then check with"
    echo "      pingjia doctor."
  fi
  if [ "$REBOOT_NEEDED" -eq 1 ]; then
    echo "Reboot to switch on I2C/SPI (the services start at boot): sudo reboot"
  elif [ "$FRESH_CONFIG" -eq 1 ]; then
    echo "Then start: systemctl start ${UNITS[*]}"
  fi
}

main "$@"
