# credport: `make run` starts the local stack, `make test` runs every check. Both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-tools.txt pyproject.toml | sha256sum | cut -c1-12)
STAGE  ?= dev
OUT    ?= build/package

.PHONY: install test lint typecheck pytest run bench load package clean

# The first install takes minutes: each step says what it does, and pip shows each package it collects (a line
# each, no progress bars); the small steps stay quiet. Once the stamp exists, nothing here runs or prints. The stamp's
# name holds the hash of the requirement files' content, so it has no prerequisites: a checkout that only touches them
# (a newer date, the same content) reinstalls nothing.
$(STAMP):
	@test -x $(BIN)/python || { echo "make: creating the virtualenv $(VENV) with $(PYTHON)..."; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing pip into $(VENV)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check 'pip<26.3'
	@echo "make: installing Python dependencies into $(VENV) (first run: about 2-5 minutes; later runs skip this)..."
	@$(BIN)/python -m pip install --progress-bar off --disable-pip-version-check -r requirements-dev.txt
	@echo "make: installing the AWS CLI into its own virtualenv $(VENV)/awscli (it pins botocore)..."
	@test -x $(VENV)/awscli/bin/python || $(PYTHON) -m venv $(VENV)/awscli
	@$(VENV)/awscli/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@echo "make: installing credport itself (editable)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@ && echo "make: $(VENV) is ready."

install: $(STAMP)

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy app.py chalicelib client local bench

# Unit and functional tests on every core (each xdist worker has its own in-process moto). The end-to-end tests then
# run a file per worker (each worker starts its own local stack; a file's tests share module state and stacks), but
# test_schemathesis.py alone in one process: its generated tests share one node id, which xdist cannot schedule.
PYTEST_JOBS ?= auto
SCHEMATHESIS_TESTS = tests/e2e/test_schemathesis.py
# PYTEST_ARGS reach each run; where they select tests (-k, a path), a run they leave nothing to do is no failure
# (pytest's exit 5), so `make pytest PYTEST_ARGS="-k refresh"` runs what matches wherever it is.
NONE_SELECTED_OK = $(if $(strip $(PYTEST_ARGS)),|| [ $$? -eq 5 ])
pytest: install
	$(BIN)/python -m pytest -n $(PYTEST_JOBS) tests/unit tests/functional $(PYTEST_ARGS) $(NONE_SELECTED_OK)
	$(BIN)/python -m pytest -n $(PYTEST_JOBS) --dist loadfile tests/e2e --ignore=$(SCHEMATHESIS_TESTS) $(PYTEST_ARGS) $(NONE_SELECTED_OK)
	$(BIN)/python -m pytest $(SCHEMATHESIS_TESTS) $(PYTEST_ARGS) $(NONE_SELECTED_OK)

run: install
	$(BIN)/python -m local $(ARGS)

# Benchmarks (never part of `make test`): one table, and bench/results/latest.json.
bench: install
	$(BIN)/python -m bench $(ARGS)

# Load (never part of `make test`): its own local stack, 60 s of signed /token, session refreshes and auto-id
# while every key rotates every 10 s; a table, bench/results/load.json, non-zero exit on any error or rejection.
load: install
	$(BIN)/python -m bench.load $(ARGS)

# One SAM stack: the app merged with template.yaml (CREDPORT_PREFIX names the event queue and topic), its package
# carrying bytecode for every module (local/package_bytecode.py: Lambda's /var/task is read-only).
package: install
	CREDPORT_PREFIX=credport-$(STAGE) AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
		$(BIN)/chalice package --stage $(STAGE) --merge-template template.yaml $(OUT)
	$(BIN)/python -m local.package_bytecode $(OUT)/deployment.zip

clean:
	rm -rf build .local .mypy_cache .pytest_cache .ruff_cache .chalice/deployments
