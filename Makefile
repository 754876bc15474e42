# Two commands matter: `make run` and `make test`. Everything is idempotent.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: run test test-suite lint format bench clean system-deps migrate cert

.venv/.stamp-deps: requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || python3.11 -m venv .venv
	$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# Debian packages the tests need (a real Chromium for the UI tests). Needs root.
.venv/.stamp-system: .venv/.stamp-deps
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	touch $@

system-deps: .venv/.stamp-system

migrate: .venv/.stamp-deps
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seed_demo
	.venv/bin/daphne -b $(HOST) -p $(PORT) fc25_denoise.asgi:application

lint: .venv/.stamp-deps
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: .venv/.stamp-deps
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The suite runs inside a private network namespace (scripts/netns-run): WebRTC never
# touches the machine's real interfaces.
test-suite: .venv/.stamp-system
	scripts/netns-run $(PY) -m pytest $(PYTEST_ARGS)

test: lint test-suite

bench: .venv/.stamp-system
	$(PY) -m bench.denoise_bench
	@for b in live presence; do \
	  if [ -f bench/$${b}_bench.py ]; then scripts/netns-run $(PY) -m bench.$${b}_bench || exit 1; fi; \
	done

clean:
	rm -rf .venv staticfiles .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
