# Two commands matter: `make run` and `make test`. Everything is idempotent.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: run test test-suite lint format bench demo clean system-deps migrate cert

# The pages' JS tooling (ESLint; axe-core, which the Chromium tests inject), pinned in package-lock.json.
node_modules/.stamp: package.json package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.venv/.stamp-deps: requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || python3.11 -m venv .venv
	$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# Debian packages the tests need (a real Chromium for the UI tests). Needs root.
# nginx, coturn and janus for the deploy and scale-out tests, which start their own copies on
# free ports: the system services these packages bring are stopped, so nothing is left holding
# ports 80/3478/8088.
.venv/.stamp-system: .venv/.stamp-deps
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	command -v nginx >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null && $(STOP_SERVICE) nginx)
	command -v turnserver >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null && $(STOP_SERVICE) coturn)
	command -v janus >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null && $(STOP_SERVICE) janus)
	touch $@

# Stop and disable a service a package just started (systemd or not); never fails.
STOP_SERVICE = sh -c 'systemctl disable --now "$$0" >/dev/null 2>&1 || service "$$0" stop >/dev/null 2>&1; true'

system-deps: .venv/.stamp-system

migrate: .venv/.stamp-deps
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seed_demo
	.venv/bin/daphne -b $(HOST) -p $(PORT) fc25_denoise.asgi:application

lint: .venv/.stamp-deps node_modules/.stamp
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	npx --no-install eslint --max-warnings=0 static/js eslint.config.js

format: .venv/.stamp-deps
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The suite runs inside a private network namespace (scripts/netns-run): WebRTC never
# touches the machine's real interfaces.
test-suite: .venv/.stamp-system node_modules/.stamp
	scripts/netns-run $(PY) -m pytest $(PYTEST_ARGS)

test: lint test-suite

# Two aiortc clients: alice goes live with a noisy file, bob listens; WAVs land in demo-out/.
demo: .venv/.stamp-deps
	scripts/netns-run $(PY) scripts/live_demo.py --out demo-out

bench: .venv/.stamp-system
	$(PY) -m bench.denoise_bench
	$(PY) -m bench.denoise_engines
	@for b in live presence scale; do \
	  if [ -f bench/$${b}_bench.py ]; then scripts/netns-run $(PY) -m bench.$${b}_bench || exit 1; fi; \
	done
	scripts/netns-run $(PY) -m bench.outage_campaign

clean:
	rm -rf .venv node_modules staticfiles .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# A self-signed certificate for a LAN name or address: make cert NAME=host.lan
# -> $(CERT_DIR)/NAME.crt and NAME.key (docs/deploy.md says how to use a real one instead).
CERT_DIR ?= certs
cert:
	@test -n "$(NAME)" || { echo "usage: make cert NAME=host.lan (or NAME=192.168.1.20)" >&2; exit 2; }
	mkdir -p $(CERT_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 825 \
	  -subj "/CN=$(NAME)" \
	  -addext "subjectAltName=$$(echo '$(NAME)' | grep -Eq '^[0-9.]+$$|:' && echo IP || echo DNS):$(NAME)" \
	  -addext "extendedKeyUsage=serverAuth" \
	  -keyout $(CERT_DIR)/$(NAME).key -out $(CERT_DIR)/$(NAME).crt
	chmod 600 $(CERT_DIR)/$(NAME).key
	@openssl x509 -in $(CERT_DIR)/$(NAME).crt -noout -subject -ext subjectAltName -enddate
