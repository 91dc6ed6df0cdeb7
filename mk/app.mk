# app_src: tests and benchmark (owned by the application; the image is `app-image` in image.mk).
# The tests start their own Redis, PostgreSQL, gunicorn services, nginx and chromium on loopback
# (Debian packages installed by `make prereqs`); nothing is left running afterwards.
.PHONY: test-app test-app-quick bench bench-capacity
APP_PYTEST := cd app_src && python -m pytest -p no:cacheprovider -q -ra

test-app: venv ## application tests: unit, integration (gunicorn), faults, browser (about 2-3 min)
	$(APP_PYTEST) --durations=10

test-app-quick: venv ## application tests without the slow fault and browser tests (under 1 min)
	$(APP_PYTEST) -m "not slow"

bench: venv ## bounded loopback benchmark -> docs/benchmarks/latest.json and docs/performance.md (3-5 min)
	python app_src/bench/run.py --json docs/benchmarks/latest.json --markdown docs/performance.md

bench-capacity: venv ## web tier under crowds: vote req/s, SSE viewers held, slow clients, gevent vs gthread -> docs/benchmarks/capacity.json (3-4 min)
	python app_src/bench/capacity.py --json docs/benchmarks/capacity.json gevent gthread
