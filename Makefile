# Set-up, run and test on a fresh Debian machine with Python 3.11: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench demo-model clean

setup: $(STAMP)

$(STAMP): pyproject.toml tools/system-deps.sh
	bash tools/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

run: setup
	$(BIN)/keras-explorer resources/demo_model.keras

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/ruff check explorer tests benchmarks resources

bench: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench.py

demo-model: setup
	$(BIN)/pip install --quiet -e ".[demo]"
	$(BIN)/python resources/train_demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
