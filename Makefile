# `make run` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JS := tests/js
WHEELS := $(VENV)/wheelhouse

.PHONY: run test lint bench clean

# Recipes that `make run` reaches are silent (@, and pip's output to stderr), so its standard
# output is only the sandbox's export lines: `make -s run > sandbox.env` works too.
$(BIN)/.installed: pyproject.toml
	@echo "imds-proxy: installing into $(VENV) (imds-proxy, moto, the test tools; about a minute the first time)..." >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet -e '.[sandbox,test]' >&2
	@touch $@

# The dependencies as wheels, so tests/test_docker.py can run docker/install.sh offline.
$(WHEELS)/.done: $(BIN)/.installed
	$(BIN)/pip wheel --quiet -w $(WHEELS) . 'setuptools>=77'
	rm -f $(WHEELS)/imds_proxy-*.whl
	touch $@

$(JS)/node_modules/.installed: $(JS)/package.json
	cd $(JS) && npm install --no-audit --no-fund --loglevel=error
	touch $@

run: $(BIN)/.installed
	@$(BIN)/imds-proxy sandbox

test: $(BIN)/.installed $(JS)/node_modules/.installed $(WHEELS)/.done
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

# Run by hand: imds-proxy beside a bare aiohttp app under wrk (Debian's), loopback only.
bench: $(BIN)/.installed
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || \
	  { echo "make bench needs wrk: apt-get install wrk" >&2; exit 2; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(JS)/node_modules
