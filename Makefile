# whale-reid — `make demo` runs the pipeline on the built-in demo data, `make test` runs the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

# Offline-safe environment for every command the project runs (see docs/architecture.md).
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := false
export YOLO_CONFIG_DIR := $(CURDIR)/.cache/ultralytics
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export HF_HUB_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

PACKAGES := packages/core packages/retrieval packages/embedder packages/detector packages/matcher

.PHONY: install demo test browser lint format
install: $(STAMP)

# Re-installs only when a dependency declaration changed; a second `make install` is a no-op.
$(STAMP): constraints.txt pyproject.toml $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt $(addprefix -e ,$(PACKAGES)) -e '.[dev]'
	touch $(STAMP)

demo: install
	dvc repro

test: install browser
	pytest

# The review page's tests drive Debian's headless Chromium. As root on a Debian machine (CI) it is
# installed here; elsewhere those tests skip and say why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium is not installed; the review-page browser tests will be skipped"

lint: install
	ruff check . && ruff format --check .

format: install
	ruff check --fix . && ruff format .
