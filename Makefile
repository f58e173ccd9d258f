# The two commands a fresh machine needs (see README):
#   make demo   -> set up, then run the main job
#   make test   -> set up, then run the tests (what .ci/run calls)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: setup demo test test-fast test-slow test-pi bench clean
setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh $(ARGS)

test: setup
	rc=0; $(PYTEST) -q --durations=30 || rc=$$?; SIGMAWATCH_PYTHON=$(PY) bash scripts/test-pi.sh || rc=$$?; exit $$rc

test-slow: setup
	$(PYTEST) -q -m slow

test-pi: setup
	SIGMAWATCH_PYTHON=$(PY) bash scripts/test-pi.sh

clean:
	rm -rf build *.egg-info .pytest_cache
