# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment on first use, so a fresh machine with
# only Python 3 needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skfed-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m skfed demo

test: $(STAMP)
	SKFED_ALLOW_INSECURE_KEYS=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	SKFED_ALLOW_INSECURE_KEYS=1 $(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check skfed tests benchmarks examples

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis docs/_build
