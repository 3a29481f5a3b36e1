# The two set-up commands of the README: `make run` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 8

.PHONY: run test test-fast lint report lock clean-results cluster-env bench bytecode

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@echo "Installing the pinned dependencies (constraints.txt) into $(VENV); the first time takes a few minutes"
	$(BIN)/python -m pip install --progress-bar on --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The package's bytecode, written even where Python does not write it itself
# (PYTHONDONTWRITEBYTECODE, common in containers): each job imports the package instead of
# compiling it again, about 0.04 s per job. Up to date, this takes a few milliseconds.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null

run: bytecode
	$(BIN)/snakemake --cores $(CORES)

test: bytecode
	$(BIN)/python -m pytest

test-fast: bytecode
	$(BIN)/python -m pytest -m "not slow"

# The performance targets as ratios to references timed in the same run (about 10 minutes on 2
# cores; run it on an idle machine): writes docs/performance.md. The specialised benchmarks
# (bootstrap against wildboottest, SLURM, the Monte Carlo study) run on their own: benchmarks/.
bench: bytecode
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/performance.py

# Every check runs even if an earlier one fails, so that one run lists every finding; the
# configuration is in pyproject.toml ([tool.ruff], [tool.snakefmt]). To fix what can be fixed
# automatically: $(BIN)/ruff format . && $(BIN)/ruff check --fix . && $(BIN)/snakefmt rules Snakefile
lint: $(STAMP)
	@status=0; \
	for cmd in "ruff check ." "ruff format --check ." "snakefmt --check rules Snakefile" \
	           "snakemake --lint"; do \
	  echo "== $$cmd"; $(BIN)/$$cmd || status=1; \
	done; \
	exit $$status

# the bench extra (benchmarks/bootstrap.py) and the cluster extra (.venv-cluster) are pinned
# too: both environments are frozen and merged
lock: $(STAMP) cluster-env
	$(BIN)/python -m pip install --progress-bar on --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	( echo "# Exact versions of every package in the tested environment (pip constraints)."; \
	  echo "# Regenerate with: make lock"; \
	  ( $(BIN)/python -m pip freeze --exclude-editable; \
	    .venv-cluster/bin/python -m pip freeze --exclude-editable ) | sort -u -f ) > constraints.txt

# A separate virtualenv with the SLURM executor plugin (the `cluster` extra) for runs on a SLURM
# cluster and for tests/test_slurm_cluster.py. It stays out of .venv because the plugin slows every
# snakemake start. The .gitignore written into it keeps git from listing the whole folder.
cluster-env:
	test -x .venv-cluster/bin/python || $(PYTHON) -m venv .venv-cluster
	echo '*' > .venv-cluster/.gitignore
	.venv-cluster/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.venv-cluster/bin/python -m pip install --progress-bar on --disable-pip-version-check -c constraints.txt -e ".[test,cluster]"

clean-results:
	rm -rf results logs .snakemake
