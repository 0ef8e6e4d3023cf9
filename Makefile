# The workbook's two commands: `make run` and `make test`. Both set up .venv first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NBTEST := build/nbtest
# Notebook 03's lesson on locks: a feature's lock, installed beside the project's environment.
LOCKED_03 := notebooks/03_dependencies/requirements-lock.txt
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup chromium run test check lint unit notebooks colab lab release grade serve bench clean

setup: $(STAMP)

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# kernel would otherwise recompile TensorFlow from source at import (~20 s instead of ~4 s).
$(STAMP): pyproject.toml $(LOCKED_03)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/uv pip install -q --python $(BIN)/python --target $(VENV)/locked/03_dependencies -r $(LOCKED_03) \
	  || echo "note: $(LOCKED_03) did not install (no wheel for this Python?): notebook 03 §3 skips its locked run"
	@touch $(STAMP)

# Debian's Chromium for the browser tests; Playwright never downloads a browser of its own.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

# Execute every notebook and solution in course order at default parameters (FULL=1: production sizes).
run: setup
	$(BIN)/prodml run $(if $(FULL),--full)

lint: setup
	$(BIN)/ruff check utils tests benchmarks notebooks/module01 notebooks/module04 notebooks/module05
	$(BIN)/ruff format --check utils tests benchmarks notebooks/module01 notebooks/module04 notebooks/module05
	$(BIN)/nbqa ruff notebooks solutions

# The quick inner loop, to run before each commit (CONTRIBUTING.md): lint, the release check
# (labs/ up to date, the lab conventions, short cells) and the unit tests that need no kernel,
# browser or server (`--quick`: the modules tests/conftest.py's MARKS does not list), about a
# minute on a warm checkout. pytest's exit status 5 (no test collected) fails it too.
check: lint
	$(BIN)/prodml release --check
	$(BIN)/pytest --quick -q -p no:randomly tests

# Every test module, the lab tests among them: tests/test_labs.py grades each solution (its one
# run in `make test`) and each pristine lab up to its first TODO.
unit: setup chromium
	$(BIN)/pytest --durations=15 tests

# Smoke-parameter copies of the course notebooks (papermill --prepare-only), executed cell by
# cell by nbval in order (pytest-randomly would shuffle the cells). The labs' solutions run once,
# graded, in `unit` (tests/test_labs.py), not here again.
notebooks: setup
	rm -rf $(NBTEST) && $(BIN)/prodml run --smoke --prepare-only --out $(NBTEST) notebooks
	PRODML_RUN_DIR=$(CURDIR)/build/nbrun $(BIN)/pytest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider -p no:randomly $(NBTEST)

# The unit tests and the notebook runs side by side: both spend much of their time waiting on
# kernels, servers and subprocesses, so two cores finish them sooner together than in turn.
# --output-sync keeps each one's output in one piece.
test: lint
	$(BIN)/prodml release --check
	$(MAKE) chromium
	$(MAKE) -j2 --output-sync=target unit notebooks

# Colab alone (also part of `make test`): every notebook's install set resolved against Colab's
# published runtime (tests/colab/pip-freeze.txt), and notebook 05's setup cell run with real pip
# in a stand-in for it; -s shows what each install would change, its time and download size.
colab: setup
	$(BIN)/pytest -s -p no:randomly tests/test_dependencies.py tests/test_colab.py tests/test_colab_standin.py

lab: setup
	$(BIN)/jupyter lab

release: setup
	$(BIN)/prodml release

grade: setup
	@test -n "$(NB)" || { echo "usage: make grade NB=labs/<lab>/<notebook>.ipynb"; exit 2; }
	$(BIN)/prodml grade $(NB)

serve: setup
	@test -n "$(MODEL)" || { echo "usage: make serve MODEL=name=export_dir"; exit 2; }
	$(BIN)/prodml serve --model $(MODEL)

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build runs
