# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv itself and installs the project through constraints.txt, which pins
# torch==2.13.0 (an unpinned torch would pull a multi-GB CUDA build), then compiles the
# numba-cpu kernel library into Numba's cache (tracejit warmup, 25-35 s on 2 cores), so
# that a model's first compile builds only its own loops.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m tracejit warmup
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
