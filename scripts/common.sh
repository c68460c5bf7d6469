# shellcheck shell=bash
# Shared by scripts/install.sh and scripts/uninstall.sh (sourced, not run).

# PINGJIA_SKIP names steps to leave out: skipping apt
skipping() { [[ " ${PINGJIA_SKIP:-} " == *" $1 "* ]]; }

# systemd can be asked to reload, start and stop units: not a scratch root (ROOT), not
# an image build (IMAGE=1, SYSTEMD_OFFLINE=1), systemd runs and this is no chroot.
# Otherwise units are only enabled or disabled, offline.
systemd_live() {
  if [ -n "${ROOT:-}" ] || [ "${IMAGE:-0}" -eq 1 ] || [ "${SYSTEMD_OFFLINE:-0}" = 1 ]; then return 1; fi
  if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null; then return 1; fi
  if command -v systemd-detect-virt >/dev/null && systemd-detect-virt --quiet --chroot; then return 1; fi
  return 0
}
