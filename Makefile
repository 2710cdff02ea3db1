# The two commands of the README: `make demo` and `make test`. Both set up a fresh machine.
.PHONY: setup demo demo-debezium test bench soak screenshots clean

setup:
	@./scripts/bootstrap.sh

demo: setup
	.venv/bin/snapsync demo

# The same flow with capture by Debezium on a local Kafka Connect worker (docs/connector.md).
demo-debezium:
	@./scripts/bootstrap.sh --connect
	.venv/bin/snapsync demo --debezium

# Three test processes, each with its own MariaDB, broker (and Kafka Connect when asked): the
# suite mostly waits on its servers, so three share two cores well (15 min -> 6.5 min measured).
# A module's tests stay in one process (--dist loadfile): they share its fixtures.
test:
	@./scripts/bootstrap.sh --browser --connect --sftp
	.venv/bin/pytest -q -n 3 --dist loadfile

# The web app's screenshots in docs/web/ (docs/web.md shows them), taken by the browser tests.
screenshots:
	@./scripts/bootstrap.sh --browser
	SNAPSYNC_SCREENSHOTS=docs/web .venv/bin/pytest -q tests/web/test_browser.py tests/web/test_popup.py tests/web/test_browser_usage_copy_undo.py

bench:
	@./scripts/bootstrap.sh --connect
	.venv/bin/python -m bench.run_all

# Days of running in minutes: the whole pipeline under writes and faults, every delivery checked
# (docs/operations.md, "The soak"). `make soak MINUTES=120 SEED=3` for a longer one.
MINUTES ?= 30
SEED ?= 1
soak: setup
	.venv/bin/snapsync soak --minutes $(MINUTES) --seed $(SEED)

clean:
	-.venv/bin/snapsync local down
	rm -rf .snapsync
