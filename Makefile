# Entry points: set up, run the pipeline on Fashion-MNIST, test, lint.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-fast lint format lock clean

setup:
	bash scripts/setup.sh

run:
	$(VENV)/bin/kpipe run --config configs/fashion_mnist.yaml

test:
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast:
	$(PY) -m pytest -q -m "not e2e" $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-resolve the pinned dependency set after editing requirements.in.
lock:
	$(VENV)/bin/uv pip compile --python-version 3.10 \
		--python-platform x86_64-manylinux_2_28 requirements.in -o requirements.lock

clean:
	rm -rf outputs
