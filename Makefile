# Every target builds .venv first if it is missing. torch is installed alone and pinned to the
# CPU wheel that lies on disk (pip finds it through the machine's find-links); installing it
# before the package means no other requirement can make pip resolve a multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast lint bench gpu-check clean jupyter docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,ray,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/interp demo --out demo-output

# Two pytest-xdist workers, a test file at a time each (a file's module fixtures are built once):
# the suite is tiny models and subprocess start-ups, one thread each, so two workers halve it on
# a 2-core machine (BENCHMARKS.md, "The test suite"). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests notebooks --nbmake \
		-p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check interp tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The documentation site, notebooks executed, every link checked (--strict); into site/.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Every stage on the GPU in minutes (benchmarks/gpu_check.sh says how). Not on $(STAMP): on a GPU
# machine the script keeps a torch that is already there instead of the CPU wheel pinned above.
gpu-check:
	bash benchmarks/gpu_check.sh --device $(or $(DEVICE),cuda)

jupyter: $(STAMP)
	$(BIN)/python -m pip install -q jupyterlab
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) demo-output site .cache
