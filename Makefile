# Convenience targets; scripts/dev.sh does the work (it also runs where make is missing).
.PHONY: setup simulate test bench soak clean

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

clean:
	rm -rf .venv sim-data build *.egg-info .pytest_cache .hypothesis
