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
	$(BIN)/pip install --quiet -e ".[test,distributed]"
	touch $(STAMP)

run: setup
	$(BIN)/keras-explorer resources/demo_model.keras

test: setup
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/ruff check explorer tests benchmarks resources

bench: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench.py

demo-model: setup
	$(BIN)/pip install --quiet -e ".[demo]"
	$(BIN)/python resources/train_demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# ---- Packaging and desktop integration (packaging/, README "Desktop integration and packaging") ----
DIST := dist/keras-explorer
# The `package` extra of pyproject.toml (PyInstaller), read from there so the version range lives in one place.
PACKAGE_REQS = $$($(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["package"])')

.PHONY: package package-test install-desktop uninstall-desktop icons clean-package

# dist/keras-explorer/: one folder with Python, TensorFlow, Qt and Graphviz (5-15 minutes).
package: setup
	$(BIN)/pip install --quiet $(PACKAGE_REQS)
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/keras-explorer.spec
	du -sh $(DIST)

# Builds, then runs the frozen app: headless subcommands (JSON, Graphviz, TensorFlow, spawn) and the window.
package-test: package
	KERAS_EXPLORER_PACKAGE_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/packaging/test_package.py

# For the current user: .desktop file, MIME types, icons, and ~/.local/bin/keras-explorer starting DESKTOP_APP.
DESKTOP_APP ?= $(CURDIR)/$(BIN)/keras-explorer
install-desktop:
	DESKTOP_APP="$(DESKTOP_APP)" sh packaging/linux/install-desktop.sh

uninstall-desktop:
	sh packaging/linux/install-desktop.sh --uninstall

# Re-renders resources/icons/*.png from resources/icons/keras-explorer.svg (the PNGs are committed).
icons:
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/make_icons.py

clean-package:
	rm -rf dist build/pyinstaller
