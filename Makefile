# kubeflowlite developer entry points. `make test` is the one CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: test venv tools system-packages airflow-venv lint typecheck unit pytest crds dashboard bench clean

test: venv tools system-packages lint pytest ## everything CI checks: lint, types, unit and cluster tests

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

tools: ## build (or reuse the cached) hermetic control-plane binaries
	hack/build-tools

system-packages: ## the Debian packages the tests need (hack/system-packages.txt), only those missing
	hack/system-packages

airflow-venv: ## the pinned Apache Airflow the differential tests compare with (hack/airflow-venv, cached)
	hack/airflow-venv >/dev/null

lint: venv ## ruff, mypy --strict and the import layering contracts
	$(BIN)/ruff check kubeflowlite tests benchmarks hack
	$(BIN)/ruff format --check kubeflowlite tests benchmarks hack
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: venv tools system-packages airflow-venv ## every test, in two parallel lanes (KWOK cluster + Airflow | unit + real node): hack/test-lanes
	$(BIN)/python hack/test-lanes $(PYTEST_ARGS)

.PHONY: run
run: venv ## the main job on the embedded default: the Airflow tutorial DAG, run locally
	$(BIN)/kubeflowlite run examples/tutorial.yaml --date 2020-02-09

unit: venv ## only the fast tests that need no cluster (nor Airflow)
	$(BIN)/pytest -m 'not cluster and not e2e and not airflow'

crds: venv ## regenerate crds/ from the pydantic models
	$(BIN)/kubeflowlite crds --output crds/

dashboard: venv ## regenerate the chart's Grafana dashboard from kubeflowlite/ops/dashboard.py
	$(BIN)/python -m kubeflowlite.ops.dashboard

bench: venv tools airflow-venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
