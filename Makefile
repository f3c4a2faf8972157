# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv and install
# ser_cnn into it with the versions of requirements.lock (what CI tests), so results reproduce.
# `make test` runs ruff and the fast tests (about two minutes on two cores); `make test-all` also
# the slow ones (tiny trainings, scripts end to end, notebooks), as CI does.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --quiet

.PHONY: install demo test test-all lint format benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python scripts/infer.py --top-k 3 examples/

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -m "not slow"

test-all: lint
	$(BIN)/python -m pytest

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

benchmark: install
	$(BIN)/python tools/benchmark.py preprocess

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
