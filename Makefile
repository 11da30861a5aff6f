# Hub: two commands on a fresh machine. `make run` starts the whole system on
# embedded defaults; `make test` runs the suite. Everything they need is set
# up here (venv, Python deps, browser assets from npm).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VENDOR := hub/static/vendor

.PHONY: setup chromium run test lint bench bench-smoke clean

setup: $(VENV)/.installed $(VENDOR)/.installed

# Hub itself (editable, with its tests and tools: `.[dev]`) and the Python SDK, at the exact
# versions of constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]' -e clients/python
	touch $@

# The browser Socket.IO client and Swagger UI come from npm and are served by
# the hub itself: there is no CDN at run time.
$(VENDOR)/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)/swagger-ui
	cp node_modules/socket.io-client/dist/socket.io.esm.min.js $(VENDOR)/socket.io.esm.min.js
	cp node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/socket.io.min.js
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js \
	   node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/swagger-ui/
	touch $@

# Debian's Chromium drives the browser tests; installed here when we can (root + apt).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: /usr/bin/chromium is missing (apt-get install chromium); browser tests will be skipped"; \
	  fi; \
	fi

run: setup
	$(PY) run.py

# The default suite: unit, integration (real Redis, worker, Socket.IO) and
# browser tests. HUB_TEST_ASYNC_MODES picks the hub's async modes under test.
test: setup chromium
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench

bench-smoke: setup
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache
