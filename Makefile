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

.PHONY: install lock demo baseline mlflow exp plots dashboards test test-fast browser lint format
install: $(STAMP)

# Re-installs only when a dependency declaration changed; a second `make install` is a no-op.
$(STAMP): constraints.txt pyproject.toml $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt $(addprefix -e ,$(PACKAGES)) -e '.[dev]'
	touch $(STAMP)

# Re-resolve every dependency to its newest release in a scratch venv (the torch pair kept) and rewrite
# constraints.txt with the result: review the diff, re-run `make demo`, then commit both.
TORCH_PAIR = $(shell grep -oE '^torch(vision)?==[^ ;]+' constraints.txt)
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PYTHON) -m venv "$$tmp" && \
	  "$$tmp/bin/pip" install -q --upgrade "pip>=24" && \
	  "$$tmp/bin/pip" install -q $(TORCH_PAIR) $(addprefix -e ,$(PACKAGES)) -e '.[dev]' && \
	  py=$$("$$tmp/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') && \
	  { grep '^#' constraints.txt; "$$tmp/bin/pip" list --format=freeze --exclude-editable | \
	    grep -viE '^(pip|setuptools|wheel)==' | \
	    sed -E "/^torch(vision)?==/! s/$$/ ; python_version == \"$$py\"/"; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	git diff --stat -- constraints.txt

demo: install
	dvc repro
	python -m pipelines.summary
	@echo "  (make baseline: commit dvc.lock and metrics/ so \`dvc exp show\` compares later runs with this one)"

# The demo's results as the git baseline of `dvc exp show` (its row is all `!` until dvc.lock and the
# metrics files are committed). Commits only those files.
baseline:
	git add dvc.lock metrics
	git commit -m "demo baseline: dvc.lock and metrics of \`make demo\`" -- dvc.lock metrics

# The MLflow UI on the model-training view of the experiment, without the job-runner processes (~3 GB).
MLFLOW_PORT ?= 5000
mlflow:
	@id=$$(python -c 'import mlflow, yaml; name = (yaml.safe_load(open("params.yaml")).get("tracking") or {}).get("experiment") or "whale-reid"; mlflow.set_tracking_uri("sqlite:///mlflow.db"); e = mlflow.get_experiment_by_name(name); print(e.experiment_id if e else 0)'); \
	  echo "MLflow UI: http://127.0.0.1:$(MLFLOW_PORT)/#/experiments/$$id/runs?workflowType=machine_learning&viewStateShareKey=scores"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

# `dvc exp show` lists every param (~90), code/data dependency (~40) and metric: these are the columns that
# matter, each score once, ~140 characters wide (the patterns must match whole names; a name two metrics files
# share is shown as path:name, so the tuned oof_map5 is left out beside the final one). EXP_FORMAT=--csv for a
# table to paste; `dvc params diff` for the knobs an experiment changed.
EXP_KEEP := ^Experiment$$|^Created$$|^test_map5$$|^(metrics/final\.json:)?oof_map5$$|^cv_map5$$|^cv_map5_std$$|^map50$$|^threshold$$|^embedder\.common\.backbone$$
EXP_FORMAT ?=
exp:
	dvc exp show $(EXP_FORMAT) --drop '.*' --keep '$(EXP_KEEP)'

# The per-fold validation curves and the threshold curve, drawn offline (docs/vega/plots.html inlines vega).
plots:
	dvc plots show

# optuna-dashboard for the tune stage's study (optuna.db); pinned, installed into the environment on demand.
OPTUNA_DASHBOARD := optuna-dashboard==0.21.0 bottle==0.13.4
dashboards: install
	$(PY) -m pip install -q -c constraints.txt $(OPTUNA_DASHBOARD)
	@echo "Optuna study of the tune stage:  optuna-dashboard sqlite:///optuna.db  (then open http://127.0.0.1:8080)"

test: install browser
	pytest

# The inner loop (under 2 minutes on 2 cores): no training, no `dvc repro`, nothing marked slow. CI runs `make test`.
FAST_TESTS := not slow and not train and not pipeline
test-fast: install
	pytest -q -m "$(FAST_TESTS)"

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
