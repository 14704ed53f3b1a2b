# mlpipe: one entry point for setting up, running and testing.
#   make run    set up both environments, run the training pipeline locally on the bundled data
#   make test   set up both environments, lint, run the test suite
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
TFDV_VENV := .venvs/tfdv
TFDV_LOCK := images/tfdv/requirements.lock
PYTEST_ARGS ?=

.PHONY: setup setup-uv setup-main setup-tfdv run compile test test-unit test-integration lint format lock benchmark clean \
	lock-images images pin-images container-host cluster-rehearsal kind-load kind-up kind-down

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

# every pytest run is shuffled (pytest-randomly, its seed in the header). The make targets take
# the seed from the commit, so each commit's order is new and CI's order can be replayed on that
# commit; SEED=N replays another, SEED=random draws one.
SEED ?= $(shell c=$$(git rev-parse --short=7 HEAD 2>/dev/null) && printf '%d' 0x$$c)
RANDOM_ORDER = $(if $(filter-out random,$(SEED)),--randomly-seed=$(SEED))

test: setup lint
	$(UV) run --frozen pytest $(RANDOM_ORDER) $(PYTEST_ARGS)

test-unit: setup
	$(UV) run --frozen pytest $(RANDOM_ORDER) -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(UV) run --frozen pytest $(RANDOM_ORDER) -m integration $(PYTEST_ARGS)

benchmark: setup
	$(UV) run --frozen python benchmarks/pipeline_overhead.py

# re-resolve both locks (needs the package index), then the image locks derived from them
lock: setup-uv
	$(UV) lock
	$(UV) pip compile images/tfdv/requirements.in -o $(TFDV_LOCK) --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --quiet
	$(MAKE) lock-images

# ---------------------------------------------------------------- images and kind
# Images are tagged with the project version (never :latest: kind would always pull, and fail).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_REGISTRY ?= ghcr.io/mlpipe
IMAGES := pipeline serving tfdv
KIND_CLUSTER ?= mlpipe
# the image builder: docker when a Docker engine answers (not podman's Docker-compatible API
# behind DOCKER_HOST), else podman when installed (see `make container-host`); DOCKER=... overrides
ifeq ($(origin DOCKER),undefined)
DOCKER := $(shell v=$$(docker version --format '{{range .Server.Components}}{{.Name}};{{end}}' \
	2>/dev/null) && case "$$v" in (*odman*) false ;; esac && echo docker \
	|| { command -v podman >/dev/null 2>&1 && echo podman || echo docker; })
endif
# podman: RUN steps on the host's network (no bridge, NAT or DNS relay between the build and the
# package indexes; the default bridge works too where iptables does)
DOCKER_BUILD_FLAGS ?= $(if $(filter podman,$(notdir $(DOCKER))),--network host)

# pipeline and serving: the main set from uv.lock (no dev tools, no project), with hashes;
# the wheel builder's hatchling pin, with hashes. tfdv's lock is compiled by `make lock`.
lock-images: setup-uv
	$(UV) export --frozen --no-dev --no-emit-project --format requirements-txt --quiet \
		-o images/pipeline/requirements.lock
	$(UV) export --frozen --no-dev --no-emit-project --format requirements-txt --quiet \
		-o images/serving/requirements.lock
	$(UV) pip compile images/build-requirements.in -o images/build-requirements.lock \
		--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--no-header --quiet

# BASE_IMAGE: another base than the Dockerfiles' digest-pinned default (their `ARG BASE`), passed
# as --build-arg BASE; `make container-host` prints the one to use where the default cannot be
# pulled (the local stand-in). Empty: the pinned official base.
BASE_IMAGE ?=
images:
	@for image in $(IMAGES); do \
		echo "building $(IMAGE_REGISTRY)/$$image:$(VERSION) with $(DOCKER)$(if $(BASE_IMAGE), on $(BASE_IMAGE))"; \
		$(DOCKER) build $(DOCKER_BUILD_FLAGS) -f images/$$image/Dockerfile \
			$(if $(BASE_IMAGE),--build-arg BASE=$(BASE_IMAGE)) \
			--build-arg VERSION=$(VERSION) -t $(IMAGE_REGISTRY)/$$image:$(VERSION) . || exit 1; \
	done

# at release, after pushing the images: pin them by digest in the cloud overlay and in
# images/digests.env (read by `mlpipe compile`); DIGESTS="pipeline=sha256:... serving=... tfdv=..."
# or, empty, the digests $(DOCKER) recorded on push (manifests/scripts/pin_images.py)
pin-images: setup-main
	$(UV) run --frozen python manifests/scripts/pin_images.py --registry $(IMAGE_REGISTRY) \
		--version $(VERSION) --engine $(DOCKER) $(DIGESTS)

# a machine without Docker (CI: fresh Debian, root): podman with the Docker-compatible API on
# /run/podman/podman.sock, and the images' base made locally when no registry is reachable
# (tests/rehearsal/container_host.sh, base_image.sh; idempotent). With Docker: nothing to do.
# Then: make images; export DOCKER_HOST=unix:///run/podman/podman.sock for Docker clients.
container-host:
	$(if $(filter 0,$(shell id -u)),,sudo )tests/rehearsal/container_host.sh
	$(if $(filter 0,$(shell id -u)),,sudo )tests/rehearsal/base_image.sh

# the cluster path run for real on this machine (README: The cluster rehearsal): builds the images
# (container-host + images), starts the kind overlay's services, runs both compiled pipelines in
# their images with their pods' environment; writes outputs/rehearsal/report.json. Needs root.
cluster-rehearsal: setup-main
	$(UV) run --frozen python -m tests.rehearsal

kind-load:
	@for image in $(IMAGES); do \
		echo "loading $(IMAGE_REGISTRY)/$$image:$(VERSION) into kind cluster $(KIND_CLUSTER)"; \
		kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REGISTRY)/$$image:$(VERSION) || exit 1; \
	done

# a kind cluster with cert-manager, KFP, Katib, KServe (RawDeployment), the project's images and
# manifests, and the compiled pipeline (see manifests/README.md); idempotent
kind-up: setup-main
	KIND_CLUSTER=$(KIND_CLUSTER) VERSION=$(VERSION) IMAGE_REGISTRY=$(IMAGE_REGISTRY) \
		manifests/scripts/kind-up.sh

kind-down:
	KIND_CLUSTER=$(KIND_CLUSTER) manifests/scripts/kind-down.sh

# old runs' files under outputs/ (the registry and MLflow store stay): mlpipe clean, README
# "Disk use"; CLEAN_ARGS="--all" empties outputs/, CLEAN_ARGS="--keep 2 --dry-run" only says
CLEAN_ARGS ?=
clean: setup-main
	$(UV) run --frozen mlpipe clean $(CLEAN_ARGS)
