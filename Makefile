# Two commands do all setup on a fresh machine:
#   make demo   run the example shop API on the embedded SQLite default (PORT=8000 make demo
#               for another port), and its browser page (http://localhost:5000/); installs
#               only what the demo needs (the `demo` extra)
#   make test   run the test suite (plus ruff, mypy --strict and the -W docs build); installs
#               the dev extra
# Both create .venv on first use. `make dist` builds the sdist and wheel into dist/.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-stamp
SHOP := $(BIN)/flask --app examples.shop:create_app

.PHONY: demo test pytest lint docs dist bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The dev extra holds the demo's too: a .venv made by `make test` serves the demo as it is.
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(SHOP) init-db
	$(SHOP) run --port $${PORT:-5000}

test: pytest lint docs

pytest: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict tests/type_check

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
