# Two commands: `make lab` opens the curriculum, `make test` runs every test.
# Both create .venv and install the pinned requirements first (skipped when nothing changed).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Committed notebooks carry no outputs, counts, widget state or language details; cell ids are kept.
STRIP := -m nbstripout --keep-id --extra-keys "metadata.language_info cell.metadata.execution"
export OMP_WAIT_POLICY := PASSIVE
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: lab test test-full setup sync clean-notebooks claims mutation book evidence clean

setup: $(STAMP)

# Set-up also installs nbstripout as this clone's git filter, so notebooks that JupyterLab saved with
# outputs are committed without them.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		git config filter.nbstripout.clean '"$(abspath $(BIN))/python" $(STRIP)' && \
		git config filter.nbstripout.smudge cat && \
		git config diff.ipynb.textconv '"$(abspath $(BIN))/python" $(STRIP) -t'; fi
	@rm -f $(VENV)/.installed-*
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) --notebook-dir=notebooks

# Two pytest workers (one per core); each notebook's cells stay together on one worker.
test: $(STAMP)
	DL_SCALE=quick DL_PROGRESS=0 DL_CACHE=0 $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env -q -ra --durations=15 -n 2 --dist loadfile

# Full scale with progress bars on, as a learner runs the notebooks.
test-full: $(STAMP)
	DL_SCALE=full DL_PROGRESS=1 $(BIN)/python -m pytest notebooks \
		--nbval-lax --nbval-current-env -q --durations=15

# After editing a notebook's paired script (or the notebook), bring the other up to date.
sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean-notebooks: $(STAMP)
	$(BIN)/python $(STRIP) notebooks/*.ipynb
	$(BIN)/jupytext --sync notebooks/*.ipynb

claims: $(STAMP)
	$(BIN)/python -m helpers.claims

# Mutation testing of the from-scratch science (not part of `make test`: it takes minutes). One OpenMP
# thread: mutmut forks after torch has started its thread pool, and a forked pool deadlocks.
mutation: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# The static site: every notebook executed at full scale into build/book, then Sphinx (needs npm once,
# to fetch MathJax and the widget manager into build/vendor). Open build/book/html/index.html.
book: $(STAMP)
	$(BIN)/python tools/book.py

# Every notebook at quick scale for seeds 0-4: each claim's range and pass count (the book shows them).
evidence: $(STAMP)
	$(BIN)/python tools/evidence.py notebooks/*.ipynb --seeds 0 1 2 3 4 --scales quick --jobs 2 \
		--out build/evidence

clean:
	rm -rf build .pytest_cache mutants
