# Two commands: `make lab` opens the curriculum, `make test` runs every test.
# Both create .venv and install the pinned requirements first (skipped when nothing changed).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
export OMP_WAIT_POLICY := PASSIVE
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: lab test test-full setup clean-notebooks claims clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks

test: $(STAMP)
	DL_SCALE=quick DL_PROGRESS=0 DL_CACHE=0 $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env -q -ra --durations=15

test-full: $(STAMP)
	DL_SCALE=full DL_PROGRESS=0 $(BIN)/python -m pytest notebooks \
		--nbval-lax --nbval-current-env -q --durations=15

clean-notebooks: $(STAMP)
	$(BIN)/python tools/nbsync.py strip notebooks/*.ipynb

claims: $(STAMP)
	$(BIN)/python -m helpers.claims

clean:
	rm -rf build .pytest_cache
