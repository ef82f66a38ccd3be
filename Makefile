# Two commands do all the set-up: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs there, idempotently.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.defdrop-installed
FASHION_DIR := /usr/share/datasets/fashion-mnist
DEMO_OUT ?= runs/demo

.PHONY: demo test venv system-deps bench clean

$(PY):
	python3 -m venv $(VENV)

# torch first (pinned, a CPU wheel on this machine), then the project with its dev extras (pyproject asks only for
# torch>=2.2,<3, which the pinned wheel satisfies, so pip keeps it).
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Fashion-MNIST and Chromium (for the figure tests) where apt-get is usable.
system-deps:
	@need=""; \
	[ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ] || need="$$need dataset-fashion-mnist"; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	if [ -z "$$need" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$need"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null) \
	    || echo "apt-get failed for:$$need; going on without them"; \
	else \
	  echo "apt-get not usable here; not installing:$$need (fashion-mnist and the browser tests need them)"; \
	fi

demo: $(STAMP) system-deps
	$(VENV)/bin/defdrop demo --out $(DEMO_OUT) --jobs 2

# Lint, then the suite over one pytest worker per core (at most 4), one torch thread each (no oversubscription).
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -n auto --maxprocesses 4

# Benchmarks (not part of make test): each prints measured figures and ratios.
bench: $(STAMP) system-deps
	$(PIP) install --quiet -e '.[dev,bench]'
	$(PY) bench/train.py
	$(PY) bench/attacks.py
	$(PY) bench/payoff.py
	$(PY) bench/solve.py

clean:
	rm -rf $(VENV) .pytest_cache
