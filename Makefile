# Two commands: `make demo` (set up + run the demo pipeline) and `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP_VERSION := 26.3
EXTRAS := dev,gbdt,hf,ray,selection
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1

.PHONY: demo test setup lock ui clean-demo templates

setup: $(STAMP)

# Installs exactly what requirements.lock pins (CI and a fresh clone get the same versions), then the project itself
# without dependencies. torch==2.13.0 first: it resolves to the local CPU build, so no multi-GB CUDA build is pulled.
$(STAMP): pyproject.toml requirements.lock Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

# Re-resolve pyproject.toml's dependencies (all extras) in a scratch venv and pin the result in requirements.lock.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q pip==$(PIP_VERSION) && .lock-venv/bin/python -m pip install -q torch==2.13.0
	.lock-venv/bin/python -m pip install -q -e ".[$(EXTRAS)]"
	{ echo "# Pinned by 'make lock' from pyproject.toml extras [$(EXTRAS)] on Python 3.11 (CPU torch). Do not edit by hand."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock
	rm -rf .lock-venv

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro
	@echo ""
	@echo "Demo finished. Results are MLflow runs in ./mlflow.db (artifacts in ./mlartifacts)."
	@echo "Open the MLflow UI:  $(VENV)/bin/curate ui   then browse http://127.0.0.1:5000"
	@echo "Pipeline report:     reports/pipeline.html ; metrics: dvc metrics show ; plots: dvc plots show"

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest

ui: $(STAMP)
	$(VENV)/bin/curate ui

# Refresh the stage templates that `curate init` ships from this repo's dvc.yaml and params.yaml.
templates: $(STAMP)
	$(PY) -c "from curation.templates import refresh; refresh('dvc.yaml', 'params.yaml', 'curation/templates')"
