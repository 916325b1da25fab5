# Two commands: `make demo` (set up + run the demo pipeline) and `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1

.PHONY: demo test setup ui clean-demo

setup: $(STAMP)

# torch==2.13.0 first: it resolves to the local CPU build, so no multi-GB CUDA build is pulled.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,gbdt,hf,ray]"
	touch $(STAMP)

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
