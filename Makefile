# gridspawner — the two commands: `make demo` and `make test`.
#   make demo   run a JupyterHub with gridspawner on http://127.0.0.1:8000 (installs what it needs)
#   make test   install test dependencies (idempotent), run the whole suite, build the docs
#   make docs   build the documentation into docs/_build/html (warnings are errors)
#   make bench  run the benchmarks in bench/
#   make chart-schema  regenerate the chart schema's part derived from the field registry
# What these install is locked (locks/: exact versions), so every machine builds what CI built.
#   make test-latest  the suite and docs on the NEWEST releases instead (own venvs; not in CI)
#   make lock         refresh locks/ from the newest releases (then `make test`, commit locks/)
SHELL := /bin/bash
ROOT := $(CURDIR)
NODE_BIN := $(ROOT)/.node/node_modules/.bin

.PHONY: demo test docs bench test-latest lock chart-schema

demo:
	scripts/install-demo-deps.sh
	mkdir -p .demo
	PATH="$(NODE_BIN):$(ROOT)/.venv/bin:$$PATH" .venv/bin/jupyterhub -f jupyterhub_config.py

test:
	scripts/install-test-deps.sh
	scripts/run-tests.sh
	$(MAKE) --no-print-directory docs

docs:
	@[ -x .venv/bin/sphinx-build ] || scripts/install-test-deps.sh
	.venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: file://$(ROOT)/docs/_build/html/index.html"

bench:
	scripts/install-test-deps.sh
	@set -e; for b in bench/bench_*.py; do \
	  echo "==> $$b"; \
	  PATH="$(NODE_BIN):$(ROOT)/.venv/bin:$$PATH" .venv/bin/python "$$b"; \
	done

chart-schema:
	.venv/bin/python scripts/gen_chart_schema.py

test-latest:
	scripts/test-latest.sh

lock:
	scripts/lock.sh
