# Convenience targets; scripts/dev.sh does the work (it also runs where make is missing).
.PHONY: setup simulate test test-install bench soak clean install uninstall

setup:
	scripts/dev.sh setup

simulate:
	scripts/dev.sh simulate

test:
	scripts/dev.sh test

bench:
	scripts/dev.sh bench

soak:
	scripts/dev.sh test -m soak

# The install in a fresh Debian 12 root (debootstrap, cached in /var/cache/pingjia-test):
# needs root and the network; tests/ops/test_install_chroot.py
test-install:
	scripts/dev.sh test -m install -p no:cacheprovider -s tests/ops/test_install_chroot.py

# On the device, as root (docs/install.md). PURGE=1 also removes records and settings.
install:
	scripts/install.sh

uninstall:
	scripts/uninstall.sh $(if $(PURGE),--purge)

clean:
	rm -rf .venv sim-data build *.egg-info .pytest_cache .hypothesis
