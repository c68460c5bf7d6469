#!/usr/bin/env bash
# Set up a development machine (Debian / Raspberry Pi OS) and run the simulator or tests.
#
#   scripts/dev.sh simulate [ARGS...]   the product on simulated hardware (default: --demo)
#   scripts/dev.sh test [PYTEST ARGS]   the test suite
#   scripts/dev.sh bench                benchmarks
#   scripts/dev.sh setup                only install what is needed
#
# Installs the Debian packages it needs (CJK bitmap fonts, python3-venv) with apt-get,
# through sudo when not root, then a virtualenv in .venv with the project and its test
# and simulator extras. Running it again installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-pip fonts-unifont xfonts-wqy)
# only for the tests: the install scripts are checked with shellcheck; debootstrap
# builds the Debian root of `make test-install`; chromium runs the browser tests (through
# playwright with the system browser: playwright never downloads one of its own here);
# the sound driver plays through aplay (alsa-utils) to ALSA's null and file devices
TEST_APT_PACKAGES=(shellcheck debootstrap chromium alsa-utils)
VENV=.venv

need_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

need_venv() {
  local stamp="$VENV/.installed"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  # reinstall only when the package definition changed
  if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # setup.py maps the packages to the root (package_dir), so the editable install is a
    # plain .pth file: no import finder, no setuptools warning, tests and tools see the tree
    "$VENV/bin/python" -m pip install -q -e '.[test,sim]'
    touch "$stamp"
  fi
}

setup() {
  if command -v dpkg-query >/dev/null; then need_apt "$@"; fi
  need_venv
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup ;;
  simulate)
    setup
    if [ $# -eq 0 ]; then set -- --demo; fi
    exec "$VENV/bin/pingjia" simulate "$@" ;;
  test)
    setup "${TEST_APT_PACKAGES[@]}"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    # (the browser and sound benchmarks need chromium and aplay, as their tests do)
    setup "${TEST_APT_PACKAGES[@]}"
    exec "$VENV/bin/python" tests/bench/run.py "$@" ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2 ;;
esac
