# Two commands do all set-up: `make run` (the pipeline on the built-in digits data) and
# `make test` (the test suite, as CI runs it). Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0

.PHONY: install run test lint format bench clean browser mutation

install: $(VENV)/.installed

# The CPU build of torch first; pyproject's open range (torch>=2.4) then installs nothing more.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,search]"
	touch $@

run: install
	source $(BIN)/activate && dvc repro
	@source $(BIN)/activate && echo && echo "Headline metrics (dvc metrics show metrics.json):" && \
	  dvc metrics show metrics.json && echo && \
	  echo "Results:  metrics.json, outputs/label_issues.csv, plots/ (dvc plots show), models/" && \
	  echo "MLflow:   mlflow.db  ->  $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

test: install
	source $(BIN)/activate && python -m pytest -q -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Mutation testing of the algorithm modules ([tool.mutmut] in pyproject.toml); not in CI (slow).
mutation: install
	$(BIN)/python -m pip install --quiet -e ".[mutation]"
	source $(BIN)/activate && { mutmut run --max-children 2 || true; } && mutmut export-cicd-stats && \
	  python -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); \
	  t = s['killed'] + s['survived'] + s['timeout']; \
	  print(f\"mutation score {100 * (s['killed'] + s['timeout']) / t:.1f}% ({s})\")" && \
	  mutmut results > mutants/survivors.txt; echo "survivors: mutants/survivors.txt (mutmut show NAME)"

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Headless Chromium + chromedriver for the report's browser test (Debian, as root; CI runs it).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# The core digits table (plain CE, cleanlab, the defaults) on the reporting seeds; ~15 min on 2 cores.
bench: install
	source $(BIN)/activate && NOISYFLOW_THREADS=1 python benchmarks/methods.py --suite digits \
	  --methods ce cleanlab noisyflow --seeds 3 4 5 --jobs 2 --overwrite

clean:
	rm -rf data/prepared models outputs metrics plots metrics.json dvc.lock
