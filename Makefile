# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv and install
# ser_cnn into it with the versions of requirements.lock (what CI tests), so results reproduce.
# `make test` runs ruff and the fast tests (about two minutes on two cores); `make test-all` also
# the slow ones (tiny trainings, scripts end to end, notebooks, the web app in Chromium), as CI
# does. `make app` starts the web app on http://127.0.0.1:7860.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --quiet
# app: `ser-cnn app` (Gradio); its browser test also needs Chromium, which .ci/run installs
# encoder: the pretrained Whisper encoder's weights (ser_cnn.encoder)
# live: `ser-cnn listen` from a microphone (sounddevice; PortAudio comes from the system)
# ray: `ser-cnn infer --engine ray` and its two-node cluster test (tests/test_ray.py)
EXTRAS ?= dev,app,encoder,live,ray

.PHONY: install demo app test test-all lint format benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock -e ".[$(EXTRAS)]"
	@touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python scripts/infer.py --top-k 3 examples/

app: install
	$(BIN)/ser-cnn app

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
