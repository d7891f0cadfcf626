# The two commands of the README: `make demo` (the main job) and `make test` (the suite; .ci/run calls it).
# Each bootstraps .venv on a machine that has only python3 and make. `make test` also runs the suite on the
# oldest supported Airflow (`make test-floor`, in .venv-floor from the lock in constraints/).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FLOOR_VENV ?= .venv-floor
FLOOR_PY := $(FLOOR_VENV)/bin/python
FLOOR_STAMP := $(FLOOR_VENV)/.installed-stamp
# The day after Airflow 3.0.6 came out: the floor lock takes every package as it was then, except the providers,
# which ship on their own schedule (each declares the Airflow it supports) and are taken at their newest.
FLOOR_DATE := 2025-08-30
FLOOR_PROVIDERS := amazon common-compat common-io common-sql duckdb openlineage postgres

.PHONY: demo test test-floor lint typecheck unit bench clean lock-floor

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

# The lock pins every dependency, the package is added on top without its own resolution, and `pip check`
# fails the build when pyproject.toml asks for something the lock does not hold (run `make lock-floor`).
$(FLOOR_STAMP): constraints/floor.txt pyproject.toml
	python3 -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(FLOOR_VENV)/bin/uv pip install --quiet --python $(FLOOR_PY) -r constraints/floor.txt
	$(FLOOR_VENV)/bin/uv pip install --quiet --python $(FLOOR_PY) --no-deps -e .
	$(FLOOR_VENV)/bin/uv pip check --quiet --python $(FLOOR_PY)
	touch $(FLOOR_STAMP)

lock-floor: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra dev --constraint constraints/floor.in \
		--exclude-newer $(FLOOR_DATE) --python-version 3.11 --output-file constraints/floor.txt \
		$(foreach p,$(FLOOR_PROVIDERS),--exclude-newer-package apache-airflow-providers-$(p)=2100-01-01)

demo: $(STAMP)
	$(PY) -m scripts.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-floor

test-floor: $(FLOOR_STAMP)
	$(FLOOR_PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .demo .pytest_cache .mypy_cache .ruff_cache
