# Convenience targets; scripts/dev.sh does the work (it also runs where make is missing).
.PHONY: setup simulate test bench soak clean install uninstall

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

# On a Raspberry Pi, as root (docs/install.md). PURGE=1 also removes records and settings.
install:
	scripts/install.sh

uninstall:
	scripts/uninstall.sh $(if $(PURGE),--purge)

clean:
	rm -rf .venv sim-data build *.egg-info .pytest_cache .hypothesis
