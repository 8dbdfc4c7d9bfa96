# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RUN := var/run
LOG := var/log
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test lint demo migrate start stop api worker chromium proto

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch lies on this machine's disk; asking for it first keeps pip from fetching a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: venv chromium
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

# The dashboard's browser test drives Debian's Chromium; Playwright never downloads a browser.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The example flow on the embedded defaults (SQLite, filesystem queue, artifacts under ./var); the API
# and one worker keep running in the background afterwards: `make stop` stops them.
demo: venv migrate start
	$(PY) -m service.demo --url http://$(HOST):$(PORT)

migrate: venv
	$(PY) -m service.core.migrate

# API and worker in the background, their own sessions (Ctrl-C in this terminal leaves them be). The API
# runs FUSEBOX_API_WORKERS processes (default 1) and serves gRPC inference on FUSEBOX_GRPC_PORT (default
# here 8001; 0 turns it off): `FUSEBOX_API_WORKERS=2 make start`.
SERVE := env FUSEBOX_GRPC_PORT=$${FUSEBOX_GRPC_PORT:-8001} FUSEBOX_GRPC_HOST=$${FUSEBOX_GRPC_HOST:-$(HOST)} \
	$(PY) -m service.serve --host $(HOST) --port $(PORT)
start: venv stop
	mkdir -p $(RUN) $(LOG)
	FUSEBOX_MIGRATE_ON_STARTUP=false setsid nohup $(SERVE) > $(LOG)/api.log 2>&1 < /dev/null & echo $$! > $(RUN)/api.pid
	setsid nohup $(PY) -m celery -A worker.app:celery_app worker --pool=solo --concurrency=1 --loglevel=INFO \
		> $(LOG)/worker.log 2>&1 < /dev/null & echo $$! > $(RUN)/worker.pid
	@echo "API on http://$(HOST):$(PORT), gRPC on $(HOST):$${FUSEBOX_GRPC_PORT:-8001} (logs in $(LOG)/); worker started"

stop:
	@for name in api worker; do \
		if [ -f $(RUN)/$$name.pid ] && kill -0 $$(cat $(RUN)/$$name.pid) 2>/dev/null; then \
			kill $$(cat $(RUN)/$$name.pid); \
			while kill -0 $$(cat $(RUN)/$$name.pid) 2>/dev/null; do sleep 0.2; done; \
			echo "stopped $$name"; \
		fi; \
		rm -f $(RUN)/$$name.pid; \
	done

# In the foreground, for development or one container each.
api: venv
	$(SERVE)

worker: venv
	$(PY) -m celery -A worker.app:celery_app worker --pool=solo --concurrency=1 --loglevel=INFO

# After an edit of the gRPC protocol file: the compiled descriptors the service loads (never generated Python).
proto: venv
	cd service/inference/grpc_v2 && ../../../$(PY) -m grpc_tools.protoc -I. --descriptor_set_out=grpc_predict_v2.binpb \
		grpc_predict_v2.proto
