# Two commands set up a fresh machine: `make run` (the dashboard) and `make test` (the tests).
# Both create the virtual environment in .venv and install the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-browser lint clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## Run the dashboard on http://127.0.0.1:8501 (creates data/monitor.db with the synthetic demo cohort).
run: $(STAMP)
	$(BIN)/python -m streamlit run dashboard.py

## Run every test: SQLite always; PostgreSQL too when MONITOR_TEST_POSTGRES_URL is set.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
