#!/usr/bin/env bash
# Install Pingjia on a Raspberry Pi or another Debian-based board, as root:
#   sudo scripts/install.sh [--image] [--wheelhouse DIR]
# (`su -c scripts/install.sh` where there is no sudo; `make install` where there is make).
# See docs/install.md.
#
# What it does, each step printed as "changed", "unchanged" or "skipped":
#   Debian packages (CJK bitmap fonts, python3-venv, i2c-tools, and the GPIO/SPI
#   libraries where the archive has them: python3-lgpio, python3-rpi-lgpio,
#   python3-spidev), alsa-utils (aplay, for spoken prompts); the `pingjia` system user in
#   the gpio, i2c, spi, dialout and audio groups;
#   the `pingjia-admin` group for technicians (the user who ran sudo joins it); a
#   virtualenv in /opt/pingjia with this project, the PyPI wheels of the hardware
#   libraries the archive lacks (one line says which came from where), and
#   /usr/local/bin/pingjia; /etc/pingjia/pingjia.toml from config/pingjia.toml (only when
#   absent: never overwritten); a local API token and a device secret (only when
#   absent; HTTPS for browsers: put the device's certificate from the hall CA and its key
#   in /etc/pingjia/tls/ and set api.tls_cert / api.tls_key, docs/install.md); the
#   systemd units, enabled; I2C and SPI switched on with the I2C bus at
#   400 kHz; the udev name /dev/pingjia-reader (and /dev/idcard) for the ID-card reader.
#   Then advice on sparing the SD card.
#
# Running it again changes nothing that is already in place.
#
# Options:
#   --image            building an SD-card image (a chroot, pi-gen): systemd is not
#                      running, so units are enabled offline (systemctl --root) and
#                      nothing is reloaded or restarted. Chosen by itself when systemd
#                      is not running or this is a chroot; the result is the same files
#                      as a live install.
#   --wheelhouse DIR   install the Python packages from DIR only (no PyPI): a hall
#                      without Internet access. Make DIR with --download-wheels.
#   --download-wheels DIR
#                      on a connected machine of the same architecture and Debian
#                      release: put every wheel the install needs into DIR, then stop.
#                      Needs no root.
#
# For tests:
#   PINGJIA_ROOT=/some/dir   install every file under that directory instead of /.
#                            Nothing on the running system is touched: apt, useradd,
#                            systemctl (except offline enabling), udevadm and modprobe
#                            are skipped.
#   PINGJIA_SKIP="apt useradd venv systemctl udev"
#                            skip those steps (any subset).
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${PINGJIA_ROOT:-}
ROOT=${ROOT%/}
IMAGE=0
WHEELHOUSE=${PINGJIA_WHEELHOUSE:-}
DOWNLOAD=

APT_PACKAGES=(fonts-unifont xfonts-wqy python3 python3-venv python3-pip i2c-tools alsa-utils)
# Python module, its Debian package (the Raspberry Pi archive has all three, Debian
# proper only python3-spidev), its PyPI name for the virtualenv otherwise. The last two
# are what luma.core[gpio,spi] needs for an SPI panel's DC/RST lines and bus.
# "a|b": b already installed also provides the module (python3-rpi.gpio, the classic
# RPi.GPIO, conflicts with python3-rpi-lgpio: apt would remove it).
HW_LIBS=("lgpio python3-lgpio lgpio"
         "RPi.GPIO python3-rpi-lgpio|python3-rpi.gpio rpi-lgpio"
         "spidev python3-spidev spidev")
PIP_HW=()     # PyPI names to install into the virtualenv (the archive lacks them)
HW_CHOICES=() # "module|where it comes from", printed after the virtualenv step
HW_FAILED=()  # PyPI names pip could not install
SERVICE_USER=pingjia
ADMIN_GROUP=pingjia-admin
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

# A systemctl call on the running systemd, or a line saying why not.
live_systemctl() {  # live_systemctl STEP-NAME ARGS...
  if skipping systemctl; then say "$1" "skipped (PINGJIA_SKIP)"; return 0; fi
  if [ -n "$ROOT" ]; then say "$1" "skipped (scratch root $ROOT)"; return 0; fi
  if ! systemd_live; then say "$1" "skipped (systemd not running: image build or chroot)"; return 0; fi
  systemctl "${@:2}"
}

# A step that acts on the running system: not under a scratch root, not when skipped.
live() {
  if [ -n "$ROOT" ]; then say "$2" "skipped (scratch root $ROOT)"; return 1; fi
  if skipping "$1"; then say "$2" "skipped (PINGJIA_SKIP)"; return 1; fi
  return 0
}

# chown only on the real system, as root (a scratch root has no such user); sets
# OWN_CHANGED when the owner was different
own() {
  OWN_CHANGED=0
  if [ -z "$ROOT" ] && [ "$(id -u)" -eq 0 ] && getent passwd "${1%:*}" >/dev/null \
      && getent group "${1#*:}" >/dev/null; then
    if [ "$(stat -c %U:%G "$2")" != "$1" ]; then
      chown "$1" "$2"
      OWN_CHANGED=1
    fi
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

# No `cmd | grep -q` here: under pipefail, grep leaving early makes the writer die of
# SIGPIPE and the test fail at random.
deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
deb_available() {  # the archive has a candidate version
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

# Which hardware library comes from Debian and which from PyPI. Without apt (scratch
# root, PINGJIA_SKIP=apt, no dpkg) the Debian packages already installed count, the
# rest goes into the virtualenv.
choose_hw_libs() {  # choose_hw_libs CAN_APT -> HW_APT (to install), PIP_HW, HW_CHOICES
  HW_APT=()
  local entry module debs deb pypi have p
  for entry in "${HW_LIBS[@]}"; do
    read -r module debs pypi <<<"$entry"
    deb=${debs%%|*}
    have=
    if command -v dpkg-query >/dev/null; then
      for p in ${debs//|/ }; do deb_installed "$p" && { have=$p; break; }; done
    fi
    if [ -n "$have" ]; then
      HW_CHOICES+=("$module|Debian package $have")
    elif [ "$1" -eq 1 ] && deb_available "$deb"; then
      HW_APT+=("$deb")
      HW_CHOICES+=("$module|Debian package $deb")
    else
      PIP_HW+=("$pypi")
      HW_CHOICES+=("$module|PyPI wheel $pypi in the virtualenv (no $deb in this system's archive)")
    fi
  done
}

step_packages() {
  if ! live apt "Debian packages"; then choose_hw_libs 0; return 0; fi
  if ! command -v dpkg-query >/dev/null; then
    say "Debian packages" "skipped (no dpkg: not Debian)"
    choose_hw_libs 0
    return 0
  fi
  local missing=() p updated=0
  for p in "${APT_PACKAGES[@]}"; do deb_installed "$p" || missing+=("$p"); done
  # a fresh system (debootstrap, a minimal image) may have no package lists yet
  if [ ${#missing[@]} -gt 0 ] || ! deb_available python3; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    updated=1
  fi
  choose_hw_libs 1
  missing+=("${HW_APT[@]}")
  if [ ${#missing[@]} -eq 0 ]; then say "Debian packages" "unchanged"; return 0; fi
  [ "$updated" -eq 1 ] || DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  say "Debian packages" "changed (installed ${missing[*]})"
}

in_group() { [[ " $(id -nG "$1" 2>/dev/null) " == *" $2 "* ]]; }

step_user() {
  live useradd "user and groups" || return 0
  local made=() g
  for g in "${HW_GROUPS[@]}" "$ADMIN_GROUP"; do
    getent group "$g" >/dev/null || { groupadd --system "$g"; made+=("group $g"); }
  done
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/pingjia --no-create-home \
      --shell /usr/sbin/nologin --comment "Pingjia evaluator services" "$SERVICE_USER"
    made+=("user $SERVICE_USER")
  fi
  for g in "${HW_GROUPS[@]}"; do
    if ! in_group "$SERVICE_USER" "$g"; then
      usermod -aG "$g" "$SERVICE_USER"
      made+=("+$g")
    fi
  done
  # the technician who ran `sudo scripts/install.sh` reads settings and status without sudo
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ! in_group "$SUDO_USER" "$ADMIN_GROUP"; then
    usermod -aG "$ADMIN_GROUP" "$SUDO_USER"
    made+=("$SUDO_USER joins $ADMIN_GROUP: log in again")
  fi
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

# the files pip needs to build the project
SOURCE_PARTS=(setup.py README.md agent config drivers terminal)

source_stamp() {
  (cd "$SRC" && find "${SOURCE_PARTS[@]}" -type f \
      ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
      | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# A copy of the source in a temporary directory: pip builds there, so no root-owned
# build/ or *.egg-info is left in the clone.
source_copy() {  # source_copy DIR
  (cd "$SRC" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - "${SOURCE_PARTS[@]}") \
    | tar -C "$1" -xf -
}

pip_source() {  # what pip installs from: PyPI, or only the wheelhouse
  if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such directory"
    printf '%s\n' --no-index --find-links "$WHEELHOUSE"
  fi
}

step_venv() {
  if skipping venv; then say "virtualenv" "skipped (PINGJIA_SKIP)"; return 0; fi
  local stamp="$OPT/installed-from" want changed=() build pipsrc=() name missing_hw=()
  want=$(source_stamp)
  mapfile -t pipsrc < <(pip_source)
  if [ ! -x "$VENV/bin/python" ]; then
    # system site packages: the Debian hardware libraries (python3-lgpio needs its C library)
    python3 -m venv --system-site-packages "$VENV"
    changed+=("created")
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    build=$(mktemp -d)
    source_copy "$build"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q "${pipsrc[@]}" --upgrade "$build"
    rm -rf "$build"
    printf '%s\n' "$want" >"$stamp"
    changed+=("installed $SRC")
    RESTART_NEEDED=1
  fi
  for name in "${PIP_HW[@]}"; do
    "$VENV/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing_hw+=("$name")
  done
  for name in "${missing_hw[@]}"; do
    # one by one: a library that cannot be had (spidev builds from source) costs only
    # the hardware that needs it, and the line says so
    if PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q "${pipsrc[@]}" "$name"; then
      changed+=("$name from ${WHEELHOUSE:-PyPI}")
      RESTART_NEEDED=1
    else
      HW_FAILED+=("$name")
    fi
  done
  if [ -z "$ROOT" ] && [ "$(readlink /usr/local/bin/pingjia 2>/dev/null)" != "$VENV/bin/pingjia" ]; then
    ln -sfn "$VENV/bin/pingjia" /usr/local/bin/pingjia
    changed+=("/usr/local/bin/pingjia")
  fi
  outcome "virtualenv" "${changed[@]}"
}

say_hw_choices() {
  local c
  for c in "${HW_CHOICES[@]}"; do say "library ${c%%|*}" "${c#*|}"; done
  for c in "${HW_FAILED[@]}"; do
    say "library $c" "NOT INSTALLED: pip could not install it (spidev needs python3-dev and a compiler); the hardware that uses it will not work"
  done
}

# settings and token: the services read them as their owner (the agent runs in a
# private user namespace where no other group exists), technicians through the
# pingjia-admin group; ProtectSystem=strict keeps the services from changing them.
SHARED_OWNER="$SERVICE_USER:$ADMIN_GROUP"

shared_file_mode() {  # shared_file_mode NAME FILE: 0640 pingjia:pingjia-admin; true if changed
  local fixed=()
  if [ "$(stat -c %a "$2")" != "640" ]; then chmod 0640 "$2"; fixed+=("mode 0640"); fi
  own "$SHARED_OWNER" "$2"
  [ "$OWN_CHANGED" -eq 0 ] || fixed+=("owner $SHARED_OWNER")
  if [ ${#fixed[@]} -gt 0 ]; then say "$1" "changed ($2: ${fixed[*]})"; return 0; fi
  return 1
}

step_config() {
  if [ -f "$CONFIG" ]; then
    shared_file_mode "settings" "$CONFIG" || say "settings" "unchanged ($CONFIG kept as it is)"
    return 0
  fi
  local tmp
  tmp=$(mktemp)
  # the default file, with the local API token kept in its own file (made below)
  sed 's|^token_file = ""|token_file = "/etc/pingjia/api-token"|' "$SRC/config/pingjia.toml" >"$tmp"
  grep -q '^token_file = "/etc/pingjia/api-token"' "$tmp" || die "config/pingjia.toml has no token_file line"
  put_file "$tmp" "$CONFIG" 0640
  rm -f "$tmp"
  own "$SHARED_OWNER" "$CONFIG"
  FRESH_CONFIG=1
  say "settings" "changed ($CONFIG: the default; set device.id and site.* before use)"
}

step_token() {
  if [ -f "$TOKEN_FILE" ]; then
    shared_file_mode "local API token" "$TOKEN_FILE" || say "local API token" "unchanged"
    return 0
  fi
  (umask 027 && random_hex 24 >"$TOKEN_FILE")
  chmod 0640 "$TOKEN_FILE"
  own "$SHARED_OWNER" "$TOKEN_FILE"
  say "local API token" "changed ($TOKEN_FILE generated; the window PC needs it)"
}

step_secret() {
  if [ -f "$SECRET_FILE" ]; then
    local fixed=()
    if [ "$(stat -c %a "$SECRET_FILE")" != "600" ]; then chmod 0600 "$SECRET_FILE"; fixed+=("mode 0600"); fi
    own root:root "$SECRET_FILE"
    [ "$OWN_CHANGED" -eq 0 ] || fixed+=("owner root")
    if [ ${#fixed[@]} -gt 0 ]; then
      say "device secret" "changed ($SECRET_FILE: ${fixed[*]})"
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
  # a marker kept until systemd has read the new units: a run that stopped half-way
  # (or an image build) reloads on the next live run instead of saying "unchanged"
  local pending="$OPT/units-reload-pending"
  if [ "$any" -eq 1 ]; then : >"$pending"; fi
  CHANGED=$any
  [ "$any" -eq 0 ] || RESTART_NEEDED=1
  report "systemd units" "${what[*]:-}"
  if [ -f "$pending" ] && systemd_live && ! skipping systemctl; then
    systemctl daemon-reload
    rm -f "$pending"
    say "systemd reload" "changed (daemon-reload)"
  elif [ -f "$pending" ]; then
    live_systemctl "systemd reload"
  fi
}

step_enable() {
  local u wants="$UNIT_DIR/multi-user.target.wants" what=()
  for u in "${UNITS[@]}"; do
    if [ "$(readlink "$wants/$u" 2>/dev/null)" = "/etc/systemd/system/$u" ]; then
      continue
    fi
    if systemd_live && ! skipping systemctl; then
      systemctl enable --quiet "$u"
    elif command -v systemctl >/dev/null && [ -d "${ROOT:-/}/usr/lib/systemd" ]; then
      # offline, as in an image build: systemctl edits the links and talks to no one
      SYSTEMD_OFFLINE=1 systemctl --root="${ROOT:-/}" enable --quiet "$u"
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
  if [ "$CHANGED" -eq 1 ] && systemd_live; then modprobe i2c-dev 2>/dev/null || true; fi
}

step_udev() {
  put_file "$SRC/udev/99-pingjia-reader.rules" "$UDEV_RULE" 0644
  report "udev rule (reader name)"
  if [ "$CHANGED" -eq 1 ] && [ -z "$ROOT" ] && ! skipping udev && command -v udevadm >/dev/null \
      && systemd_live; then
    udevadm control --reload-rules || true
    udevadm trigger --subsystem-match=tty || true
  fi
}

step_restart() {
  if [ "$RESTART_NEEDED" -eq 0 ]; then say "running services" "unchanged"; return 0; fi
  if [ -n "$ROOT" ]; then say "running services" "skipped (scratch root $ROOT)"; return 0; fi
  # only services already running are restarted: a fresh device is configured first
  live_systemctl "running services" try-restart "${UNITS[@]}" || return 0
  systemd_live && ! skipping systemctl && say "running services" "changed (restarted those that were running)"
  return 0
}

# central.url from the settings file (empty when unset): only then can the agent run
central_url() {
  awk '/^[[:space:]]*\[/ { gsub(/[][[:space:]]/, ""); section = $0; next }
       section == "central" && /^[[:space:]]*url[[:space:]]*=/ {
         sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]*(#.*)?$/, ""); gsub(/^"|"$/, ""); print; exit }' \
    "$CONFIG" 2>/dev/null
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

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --image) IMAGE=1 ;;
      --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a directory"; WHEELHOUSE=$2; shift ;;
      --wheelhouse=*) WHEELHOUSE=${1#*=} ;;
      --download-wheels) [ $# -ge 2 ] || die "--download-wheels needs a directory"; DOWNLOAD=$2; shift ;;
      --download-wheels=*) DOWNLOAD=${1#*=} ;;
      -h|--help) usage; exit 0 ;;
      *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
  done
  if [ -n "$WHEELHOUSE" ]; then WHEELHOUSE=$(cd "$WHEELHOUSE" 2>/dev/null && pwd) \
    || die "--wheelhouse: no such directory"; fi
}

# --download-wheels DIR: every wheel an offline install needs, built or fetched here
download_wheels() {
  local build names=() entry module deb pypi
  mkdir -p "$DOWNLOAD"
  build=$(mktemp -d)
  source_copy "$build"
  for entry in "${HW_LIBS[@]}"; do read -r module deb pypi <<<"$entry"; names+=("$pypi"); done
  echo "Collecting wheels for Pingjia and ${names[*]} into $DOWNLOAD"
  echo "(for machines of this architecture and Python: $(uname -m), $(python3 -V 2>&1))"
  PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip wheel -q -w "$DOWNLOAD" "$build"
  rm -rf "$build"
  for pypi in "${names[@]}"; do
    # spidev has no wheel on PyPI: it builds here only with python3-dev and a compiler.
    # Debian and Raspberry Pi OS both package it (python3-spidev), so that is no loss.
    if PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip wheel -q -w "$DOWNLOAD" "$pypi" >/dev/null 2>&1; then
      say "wheel $pypi" "collected"
    else
      say "wheel $pypi" "not built here (the device then needs its Debian package)"
    fi
  done
  echo "Done. On the device: sudo scripts/install.sh --wheelhouse $DOWNLOAD"
}

main() {
  parse_args "$@"
  if [ -n "$DOWNLOAD" ]; then download_wheels; return 0; fi
  if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo scripts/install.sh, or su -c scripts/install.sh), or set PINGJIA_ROOT for a scratch install"
  fi
  [ -f "$SRC/config/pingjia.toml" ] || die "run from a Pingjia source tree ($SRC has no config/pingjia.toml)"
  if [ -z "$ROOT" ] && ! systemd_live; then IMAGE=1; fi
  echo "Installing Pingjia from $SRC${ROOT:+ into $ROOT}$([ "$IMAGE" -eq 1 ] && echo " (image build: systemd is not asked to start anything)")"
  umask 022
  step_packages
  step_user
  step_dirs
  step_venv
  say_hw_choices
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
    echo "      (sudo pingjia config set KEY VALUE; pingjia config validate), then check with"
    echo "      pingjia doctor."
  fi
  local start=(pingjia-terminal.service)
  if [ -n "$(central_url)" ]; then
    start+=(pingjia-agent.service)
  else
    echo "The agent uploads nothing until central.url is set (sudo pingjia config set central.url URL,"
    echo "or pingjia enroll); then: sudo systemctl start pingjia-agent.service"
  fi
  if [ "$IMAGE" -eq 1 ] && [ -z "$ROOT" ]; then
    echo "Image build: the units are enabled and start when the device boots."
  elif [ "$REBOOT_NEEDED" -eq 1 ]; then
    echo "Reboot to switch on I2C/SPI (the services start at boot): sudo reboot"
  elif [ "$FRESH_CONFIG" -eq 1 ]; then
    echo "Then start: sudo systemctl start ${start[*]}"
  fi
}
main "$@"
