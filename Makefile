# CI and people run the same targets. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install check test e2e demo bench clean

install: $(STAMP)

# Reinstall only when the project's metadata changed: a no-op run takes milliseconds.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

check: install
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo
	$(BIN)/mypy
	$(BIN)/mypy demo/run.py
	$(BIN)/lint-imports

test: install
	$(BIN)/pytest tests/unit tests/integration

# Builds kube-apiserver, kubectl, etcd and the reference once per version (tests/e2e/README.md),
# then runs the suite: pytest's summary (-ra: every test not passed, with why) and the slowest.
e2e: install
	$(BIN)/python -m tests.e2e.cluster.binaries --skip-without-go
	$(BIN)/pytest tests/e2e --durations=8

# Both seed workflows on a local AWS; with the real kube-apiserver when tests/e2e has built it
# (DEMO_BUILD=1 builds it first, ~15 min once). KUBEIAM_DEMO_MODE=server: the webhook alone.
demo: install
	$(BIN)/python demo/run.py

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
