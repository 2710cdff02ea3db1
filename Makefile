# The two commands of the README: `make demo` and `make test`. Both set up a fresh machine.
.PHONY: setup demo test bench clean

setup:
	@./scripts/bootstrap.sh

demo: setup
	.venv/bin/snapsync demo

test: setup
	.venv/bin/pytest -q

bench: setup
	.venv/bin/python -m bench.run_all

clean:
	-.venv/bin/snapsync local down
	rm -rf .snapsync
