# The Docker Compose local mode (app_src/compose.yaml) with the locally built images: no registry.
# app_src/compose/local.sh does the work (passwords file, up, health wait, URLs); these targets pass
# the offline images. COMPOSE_PROJECT_NAME, COMPOSE_SECRETS, VOTE_PORT, RESULT_PORT are honoured.
.PHONY: compose-up compose-down test-compose
COMPOSE_PROJECT_NAME ?= votingapp
COMPOSE_SECRETS ?= $(REPO)/.compose/secrets.env
COMPOSE_IMAGES = APP_IMAGE=$$(sed -n 's/^app_image_ref: //p' .cache/images/votingapp-app.yml) \
  REDIS_IMAGE=votingapp-redis:7 POSTGRES_IMAGE=votingapp-postgres:15
COMPOSE_LOCAL = COMPOSE_PROJECT_NAME=$(COMPOSE_PROJECT_NAME) COMPOSE_SECRETS=$(COMPOSE_SECRETS) app_src/compose/local.sh

compose-up: prereqs venv collection-link app-image ## the whole app with Docker Compose, offline images, wait for health, print the URLs (vote :5000, result :5001)
	$(COMPOSE_IMAGES) $(COMPOSE_LOCAL) up

compose-down: ## remove the Compose project's containers, networks and volumes (keeps .compose/secrets.env)
	$(COMPOSE_LOCAL) down

# Its own project name, free ports and passwords file; `down -v` even when a test fails.
test-compose: prereqs venv app-image ## compose.yaml end to end: up from nothing, votes, restarts without loss, down -v (2-3 min)
	$(COMPOSE_IMAGES) python -m pytest -v -p no:cacheprovider --durations=0 tests/compose
