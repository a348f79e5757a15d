# unstuck: `make demo` and `make test` each set up .venv on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint fuzz bench mutate clean

$(STAMP): pyproject.toml examples/adapter-zhujian/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "unstuck needs Python 3.11 or newer" or 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet -e examples/adapter-zhujian  # the outside department package the tests drive
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/unstuck demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# make bench: the benchmark suite (docs/benchmarks.md); QUICK=1 for small sizes and one round
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# make fuzz: the full fuzz run (docs/reliability.md): the bus's entry points and the console's forms
# (docs/console.md); FUZZ_EXAMPLES per entry point or endpoint, 10,000 by default
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	UNSTUCK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz.py tests/test_console_fuzz.py

MUTATE_STAMP := $(VENV)/.mutate-installed
$(MUTATE_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

# make mutate: mutation testing of the pure core (docs/testing.md); MODULES=lifecycle for one module
mutate: $(MUTATE_STAMP)
	$(BIN)/python tools/mutate.py $(MODULES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m mypy core schemas plugins adapters
	$(BIN)/python tools/lint_imports.py

clean:
	rm -rf $(VENV) .unstuck build *.egg-info
