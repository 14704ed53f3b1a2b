# mlpipe: one entry point for setting up, running and testing.
#   make run    set up both environments, run the training pipeline locally on the bundled data
#   make test   set up both environments, lint, run the test suite
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
TFDV_VENV := .venvs/tfdv
TFDV_LOCK := images/tfdv/requirements.lock
PYTEST_ARGS ?=

.PHONY: setup setup-uv setup-main setup-tfdv run compile test test-unit test-integration lint format lock benchmark clean

setup: setup-main setup-tfdv

setup-uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet "uv==$(UV_VERSION)"

# main environment (.venv): kfp 2.17, mlflow, scikit-learn, LightGBM, XGBoost, ... from uv.lock
setup-main: setup-uv
	@$(UV) sync --frozen --quiet --compile-bytecode

# tfdv environment: TFDV 1.16.1 + kfp 2.13 (protobuf 4) from its own lock; rebuilt only when the
# lock changes (a stamp holds the lock's digest); the project is installed into it without deps.
setup-tfdv: setup-uv
	@stamp=$(TFDV_VENV)/.lock.sha256; want=$$(sha256sum $(TFDV_LOCK) | cut -d' ' -f1); \
	if [ ! -x $(TFDV_VENV)/bin/python ] || [ "$$(cat $$stamp 2>/dev/null)" != "$$want" ]; then \
		echo "setting up the tfdv environment in $(TFDV_VENV) (first time: ~2 min, ~3 GB)"; \
		$(UV) venv --quiet --allow-existing --python 3.11 $(TFDV_VENV) && \
		$(UV) pip sync --quiet --compile-bytecode --python $(TFDV_VENV)/bin/python $(TFDV_LOCK) && \
		$(UV) pip install --quiet --python $(TFDV_VENV)/bin/python --no-deps -e . && \
		echo "$$want" > $$stamp; \
	fi

run: setup
	$(UV) run --frozen mlpipe run

compile: setup-main
	$(UV) run --frozen mlpipe compile

lint: setup-main
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

format: setup-main
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

test: setup lint
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-unit: setup
	$(UV) run --frozen pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(UV) run --frozen pytest -m integration $(PYTEST_ARGS)

benchmark: setup
	$(UV) run --frozen python benchmarks/pipeline_overhead.py

# re-resolve both locks (needs the package index)
lock: setup-uv
	$(UV) lock
	$(UV) pip compile images/tfdv/requirements.in -o $(TFDV_LOCK) --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --quiet

clean:
	rm -rf outputs
