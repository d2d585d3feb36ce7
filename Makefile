# nrt — developer entry points. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCHES := cache ingest inbox detectors detectors_paired alerts quicklook reprocess e2e

.PHONY: demo test lint format bench soak faults fuzz clean $(addprefix bench-,$(BENCHES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install when the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dask,irods]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench,dask,irods]'
	touch $@

demo: $(STAMP)
	$(BIN)/nrt demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks print tables side by side with peer tools; they are not pass/fail.
# `make bench` runs them all (tens of minutes); `make bench-cache` etc. one each.
bench: $(addprefix bench-,$(BENCHES))

$(addprefix bench-,$(BENCHES)): bench-%: $(VENV)/.installed-bench
	$(BIN)/python tests/benchmarks/bench_$*.py

# Seven simulated days through the live daemon (about 20 min); prints the README table.
soak: $(STAMP)
	$(BIN)/python -m tests.soak.soak --days 7

# Fault injection, long versions (the short ones run in `make test`): the broker away
# for 60 s, 50 SIGKILLs at random moments (about 10 min). Needs mosquitto; root for the tmpfs.
faults: $(STAMP)
	NRT_FAULT_LONG=1 NRT_FAULT_OUTAGE=60 NRT_FAULT_KILLS=50 $(BIN)/python -m pytest -q --timeout=3600 tests/faults

# Nightly-sized fuzzing of every parser of outside data (>= 1e5 inputs, ~15 min):
# prints inputs per parser, rejections by reason, crashes and hangs (must be 0).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
