# sp500-pipeline: `make run` runs the monthly-retrain flow once; `make test` runs lint (ruff,
# mypy) + tests.
# Both build .venv from nothing, exactly as uv.lock pins it (`make lock` updates the lock).
# uv comes from PATH, or else into a small bootstrap venv (.uv/) that leaves the system
# Python untouched.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2> /dev/null || echo .uv/bin/uv)
# uv never downloads a Python of its own here: the venv is built on $(PYTHON).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Where this project is developed there is no internet, but a copy of the real CSV lies
# beside the checkout; use it when present unless SP500_SOURCE says otherwise.
LOCAL_CSV := ../shared/data/sp500_monthly.csv
ifeq ($(origin SP500_SOURCE), undefined)
ifneq ($(wildcard $(LOCAL_CSV)),)
export SP500_SOURCE := $(abspath $(LOCAL_CSV))
endif
endif
# Byte-compile at install (as pip does): imports stay fast where PYTHONDONTWRITEBYTECODE is set.
SYNC = $(UV) sync --locked --quiet --compile-bytecode --python $(PYTHON)

.PHONY: install run test lint bench lock clean python-check

install: $(STAMP)

python-check:
	@command -v $(PYTHON) > /dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 or later, or run make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); sp500-pipeline needs 3.11 or later: run make PYTHON=/path/to/python3.11"; exit 1; }

.uv/bin/uv: | python-check
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | python-check $(if $(filter .uv/bin/uv,$(UV)),.uv/bin/uv)
	@$(UV) lock --check --quiet --python $(PYTHON) 2> /dev/null || { echo "error: uv.lock is out of date with pyproject.toml: run make lock, then commit uv.lock"; exit 1; }
	$(SYNC) --extra dev
	touch $(STAMP)

# Re-resolve every package to the newest versions pyproject.toml allows (commit the result).
lock: | python-check $(if $(filter .uv/bin/uv,$(UV)),.uv/bin/uv)
	$(UV) lock --upgrade --python $(PYTHON)

run: install
	$(BIN)/sp500 run $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	bash tests/setup_browser.sh
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

# Every benchmark, in the order their inputs need; each writes benchmarks/results/<name>.json
# and .md headed with the commit it ran at (docs/benchmarks.md: one section per question).
bench: install
	$(SYNC) --extra dev --extra bench
	$(BIN)/python benchmarks/rolling.py --seeds-from 42 47 --keep benchmarks/runs
	$(BIN)/python benchmarks/calibration.py --warehouse benchmarks/runs/seed42.duckdb benchmarks/runs/seed47.duckdb
	$(BIN)/python benchmarks/peers.py --warehouse benchmarks/runs/seed42.duckdb
	$(BIN)/python benchmarks/lesson.py --warehouse benchmarks/runs/seed42.duckdb
	$(BIN)/python benchmarks/cost.py
	$(BIN)/python benchmarks/compare_commits.py --base c60e6e4 --models default --repeat 2
	$(BIN)/python benchmarks/early_member.py
	$(BIN)/python benchmarks/stacking.py
	$(BIN)/python benchmarks/profile_step.py
	$(BIN)/python benchmarks/backtest.py --seeds 42
	$(BIN)/python benchmarks/stacked_vs_separate.py
	$(BIN)/python benchmarks/startup.py --pip

clean:
	rm -rf $(VENV) .uv .pytest_cache .ruff_cache
