# CI and people run the same targets. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned, hashed dependencies (README, "Development"): the runtime set (what an image installs)
# and the runtime + dev set (what `make install` installs). `make lock` renews them all.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt
# uv compiles the locks; it is pinned too and lives in a venv of its own, outside the dev set,
# as do awscli and py-spy for bench/ (requirements/bench-lock.txt, in .venv-bench).
LOCK_TOOLS := requirements/tools-lock.txt
LOCK_VENV := .venv-lock
# For every platform and Python >= 3.11, a hash per file, and no index URL written into the file.
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock'

.PHONY: install lock check test e2e demo bench clean image helm

install: $(STAMP)

# Reinstall only when the lock or the project's metadata changed: a no-op run takes milliseconds.
# Every package, pip and the build backend included, comes from $(DEV_LOCK) as a wheel with its
# hash, so nothing unpinned is downloaded or built. Each step prints a line; on a
# terminal pip shows its own progress, piped or with CI=true it stays quiet.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@set -e; started=$$(date +%s); pipq=; \
	if [ ! -t 1 ]; then pipq=-q; fi; \
	case "$$CI" in 1 | [Tt]rue | TRUE | yes) pipq=-q ;; esac; \
	if [ -x $(BIN)/python ]; then echo "install 1/3: $(VENV) exists"; first=; \
	else echo "install 1/3: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); \
		first=" (the first time: about 2 minutes)"; fi; \
	echo "install 2/3: $$(grep -c '^[A-Za-z0-9]' $(DEV_LOCK)) pinned packages from $(DEV_LOCK)$$first"; \
	$(BIN)/python -m pip install $$pipq --disable-pip-version-check \
		--require-hashes --no-deps --only-binary :all: -r $(DEV_LOCK); \
	echo "install 3/3: kubeiam itself, editable (changes under src/ need no reinstall)"; \
	$(BIN)/python -m pip install $$pipq --disable-pip-version-check \
		--no-deps --no-build-isolation -e .; \
	$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check || :; \
		echo "fix: pyproject.toml asks for what $(DEV_LOCK) lacks: run make lock"; exit 1; }; \
	touch $(STAMP); \
	echo "install: done in $$(( $$(date +%s) - started )) s"

# Pin every dependency to the newest version the package index serves today that pyproject.toml
# allows, then install that. Run it after changing dependencies; commit requirements/ with it.
lock:
	@test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		--require-hashes --no-deps -r $(LOCK_TOOLS)
	$(UV_COMPILE) pyproject.toml requirements/build.in -o $(LOCK)
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra dev -c $(LOCK) -o $(DEV_LOCK)
	$(UV_COMPILE) requirements/bench.in -o requirements/bench-lock.txt
	$(UV_COMPILE) requirements/tools.in -o $(LOCK_TOOLS)
	@$(MAKE) --no-print-directory install

check: install
	$(BIN)/ruff check src tests bench demo packaging
	$(BIN)/ruff format --check src tests bench demo packaging
	$(BIN)/mypy
	$(BIN)/mypy demo/run.py
	$(BIN)/lint-imports
	@$(MAKE) --no-print-directory helm-check

test: install
	$(BIN)/pytest tests/unit tests/integration

# Builds kube-apiserver, kubectl, etcd and the reference once per version (tests/e2e/README.md),
# then runs the suite: pytest's summary (-ra: every test not passed, with why) and the slowest.
e2e: install image-tools browser-tools
	$(BIN)/python -m tests.e2e.cluster.binaries --skip-without-go
	$(BIN)/pytest tests/e2e --durations=8

# Onboard an IAM user, then give an IAM group access through a role, on a local AWS; with the real
# kube-apiserver when tests/e2e has built it (DEMO_BUILD=1 builds it first, ~15 min once).
# KUBEIAM_DEMO_MODE=server: the webhook alone.
demo: install
	$(BIN)/python demo/run.py

bench: install
	$(BIN)/python bench/run.py

# Opt-in: one access entry with a policy on a real, disposable EKS cluster, compared with the
# local emulator (docs/access-entries.md, "Testing against the real service"). Never run by CI or
# `make test`; it refuses to start (exit 2) without real credentials and KUBEIAM_SMOKE_CLUSTER.
.PHONY: smoke-aws
smoke-aws: install
	$(BIN)/pytest -p no:cacheprovider tests/smoke/smoke_eks_access.py

# The OCI image, from Debian packages (mmdebstrap, this machine's apt sources) and the hashed
# runtime lock: dist/kubeiam-<version>.oci.tar and .packages.txt (packaging/image/build.py,
# docs/deploy.md). Needs root. The Debian root is cached under ~/.cache/kubeiam/image/.
image: install image-tools
	$(BIN)/python packaging/image/build.py

# mmdebstrap builds the image's Debian root; umoci is the e2e test's independent OCI reader.
.PHONY: image-tools
image-tools:
	@command -v mmdebstrap >/dev/null && command -v umoci >/dev/null || { \
		echo "image-tools: installing mmdebstrap and umoci (apt-get)"; apt-get update -q >/dev/null && \
		apt-get install -y -q --no-install-recommends mmdebstrap umoci >/dev/null; }

# Debian's Chromium: the access report's HTML is loaded in it headless (tests/e2e/test_access_report.py).
.PHONY: browser-tools
browser-tools:
	@command -v chromium >/dev/null || { \
		echo "browser-tools: installing chromium (apt-get)"; apt-get update -q >/dev/null && \
		apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }

# helm, built once from the Go module proxy into the e2e binary cache (packaging/helm.sh).
helm:
	@packaging/helm.sh

# The chart lints clean and renders with its defaults and with every optional part switched on.
HELM_CHART := deploy/helm/kubeiam
.PHONY: helm-check
helm-check:
	@set -e; helm=$$(packaging/helm.sh); out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for values in "--set clusterID=check" "-f $(HELM_CHART)/ci/all-values.yaml"; do \
		for step in "lint --strict $(HELM_CHART)" "template kubeiam $(HELM_CHART) -n kube-system"; do \
			$$helm $$step $$values >$$out 2>&1 || { cat $$out; echo "helm-check: helm $$step $$values failed"; exit 1; }; \
		done; \
	done; \
	echo "helm-check: $(HELM_CHART) lints clean and renders (defaults, ci/all-values.yaml)"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The webhook's /authenticate under arbitrary requests and collaborator faults, longer than the
# 200 examples `make test` runs (tests/unit/server/test_fuzz_review.py; KUBEIAM_FUZZ_EXAMPLES=N).
.PHONY: fuzz
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/unit/server/test_fuzz_review.py --timeout=3600 -q
