# sp500-pipeline: `make run` runs the monthly-retrain flow once; `make test` runs lint + tests.
# Both create/refresh .venv from nothing (python3 -m venv, pip install -e '.[dev]').

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where this project is developed there is no internet, but a copy of the real CSV lies
# beside the checkout; use it when present unless SP500_SOURCE says otherwise.
LOCAL_CSV := ../shared/data/sp500_monthly.csv
ifeq ($(origin SP500_SOURCE), undefined)
ifneq ($(wildcard $(LOCAL_CSV)),)
export SP500_SOURCE := $(abspath $(LOCAL_CSV))
endif
endif

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	touch $(STAMP)

run: install
	$(BIN)/sp500 run $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	bash tests/setup_browser.sh
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' 2>> $(VENV)/pip.log || (cat $(VENV)/pip.log; exit 1)
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/tuning.py
	$(BIN)/python benchmarks/stacking.py
	$(BIN)/python benchmarks/ensembles.py
	$(BIN)/python benchmarks/variants.py
	$(BIN)/python benchmarks/horizons.py
	$(BIN)/python benchmarks/backtest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
