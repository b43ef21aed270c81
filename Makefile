# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.minigen-installed
# These builds lie on the project's machines' disk; elsewhere pip fetches them.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test demo clean-demo study-demo clean-study-demo lint

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

test: install
	$(BIN)/python -m pytest -q

# Snakemake's lint wants a conda env or container per rule, which we decline (README);
# tests/test_pipeline_sync.py fails on any other lint, so its exit code is ignored here.
lint: install
	-PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --lint

# The whole pipeline through Snakemake on the embedded digits data, on the CPU, with small
# budgets (demo/params.yaml). It runs in demo/ (outputs in demo/results/), so neither
# params.yaml nor a real run's data/ and results/ are touched. Again: `make clean-demo demo`.
# No GPU here, so no `--resources gpu=1`: the retrains run side by side, one core each.
DEMO_CORES ?= all

demo: install
	@echo "== minigen demo: download -> sample -> search -> collect -> retrain -> report, settings in demo/params.yaml"
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --directory demo --cores $(DEMO_CORES)
	@echo "== done: table demo/results/report/table.md, figures demo/results/report/*.png, logs demo/logs/"
	@cat demo/results/report/table.md

clean-demo:
	rm -rf demo/data demo/results demo/logs demo/benchmarks demo/.snakemake

# The study (README "The study") the same way, in demo-study/ with demo-study/params.yaml:
# 3 arms x 3 seeds of 10-network searches and 1-epoch retrains on the digits, then the
# report comparing the arms. Again: `make clean-study-demo study-demo`.
study-demo: install
	@echo "== minigen study demo: 3 arms x 3 seeds, settings in demo-study/params.yaml"
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake study --directory demo-study --cores $(DEMO_CORES)
	@echo "== done: table demo-study/results/study/report/table.md, figures demo-study/results/study/report/*.png"
	@cat demo-study/results/study/report/table.md

clean-study-demo:
	rm -rf demo-study/data demo-study/results demo-study/logs demo-study/benchmarks demo-study/.snakemake
