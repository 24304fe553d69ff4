# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment on first use, so a fresh machine with
# only Python 3 needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skfed-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint bench clean venv docs docs-check mutation

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m skfed demo

test: $(STAMP)
	SKFED_ALLOW_INSECURE_KEYS=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)
	$(MAKE) docs-check

# The full documentation, running every example of the gallery.
docs: $(STAMP)
	rm -rf docs/_build docs/generated docs/auto_examples
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# What `make test` checks: the docs build without warnings (examples are not
# executed here; `make docs` runs them).
docs-check: $(STAMP)
	rm -rf docs/_build docs/generated docs/auto_examples
	$(PY) -m sphinx -W --keep-going -q -b html -D plot_gallery=0 docs docs/_build/html

test-slow: $(STAMP)
	SKFED_ALLOW_INSECURE_KEYS=1 $(PY) -m pytest -m slow $(PYTEST_ARGS)

# Hand-written protocol faults, one at a time, in a temporary copy of the tree
# (docs/testing.rst). Not part of `make test`: ~15 minutes on two cores.
# MUTATION_ARGS="--tests-rev <commit>" measures the tests of another commit.
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(PY) tools/mutation.py $(MUTATION_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check skfed tests benchmarks examples tools

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis docs/_build
