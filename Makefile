# Two commands set up a fresh machine: `make run` (the dashboard) and `make test` (the tests).
# Both create the virtual environment in .venv and install the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chromium nginx printing lint clean

# The first run installs for a couple of minutes: each step says what it does, and pip shows its progress.
$(STAMP): requirements.txt requirements-dev.txt
	@echo "==> creating the virtual environment in $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip
	@echo "==> installing the pinned requirements (requirements-dev.txt; a few minutes on a fresh machine)"
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)
	@echo "==> installed: $(VENV) is ready"

## Run the dashboard on http://127.0.0.1:8501 (creates data/monitor.db with the synthetic demo cohort).
## `make run PORT=8600` serves it on another port.
PORT ?= 8501
run: $(STAMP) printing
	$(BIN)/python -m streamlit run dashboard.py --server.port $(PORT)

## Debian's Chromium for the browser tests (installed when missing and this runs as root with apt-get).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: /usr/bin/chromium is missing: the browser tests will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

## Printed reports (PDF): WeasyPrint lays them out with Debian's Pango and the DejaVu fonts (HarfBuzz's subsetter
## embeds only the glyphs used, faster than WeasyPrint's fallback); the tests read
## the PDFs back with poppler-utils (pdftotext, pdftoppm). Installed when missing and this runs as root with
## apt-get.
printing:
	@if ! ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || ! ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset \
	    || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
	    || ! command -v pdftotext >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's Pango, DejaVu fonts and poppler-utils for printed reports"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils >/dev/null; \
	  else \
	    echo "note: Pango, the DejaVu fonts or poppler-utils are missing: reports cannot print and their tests" \
	      "will be skipped (apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core" \
	      "poppler-utils)"; \
	  fi; \
	fi

## Debian's nginx for the reverse-proxy test (tests/test_deployment.py runs docs/nginx/monitor.conf in front of
## the dashboard; installed when missing and this runs as root with apt-get).
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's nginx for the reverse-proxy test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else \
	    echo "note: nginx is missing: the reverse-proxy test will be skipped (apt-get install nginx)"; \
	  fi; \
	fi

## Run every test: SQLite always; PostgreSQL too when MONITOR_TEST_POSTGRES_URL is set.
## The tests run in parallel, one worker per CPU (pytest-xdist), each test file on one worker so that a
## file's shared fixtures (a dashboard server, a browser) start once; `make test WORKERS=0` runs them in
## this process alone.
WORKERS ?= auto
test: $(STAMP) chromium nginx printing
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

## The checks CI runs beside the tests: lint, formatting, the layer contracts, and strict types for the
## pure domain and the application layer.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy monitor services

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
