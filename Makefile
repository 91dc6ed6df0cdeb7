# votingapp.stack: one place for every set-up step and check. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

REPO := $(abspath .)
VENV ?= $(REPO)/.venv
BIN := $(VENV)/bin
BOOT_PYTHON ?= $(shell command -v python3.11 || command -v python3)
# This checkout, linked where Ansible looks for votingapp.stack (collections bundled with the
# `ansible` package are found in the venv's site-packages as usual).
COLLECTIONS_DIR := $(REPO)/.cache/collections
COLLECTION_LINK := $(COLLECTIONS_DIR)/ansible_collections/votingapp/stack

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS_DIR)
export ANSIBLE_HOME := $(REPO)/.cache/ansible
export ANSIBLE_FORCE_COLOR ?= 1
export PY_COLORS ?= 1

MOLECULE_SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
SCENARIO ?=

# `make test` runs each check as a phase: `$(call phase,TARGET)` runs `make TARGET`, prints its
# wall time and appends it to PHASE_LOG, so CI output and the fresh-machine rehearsal show where
# the time goes.
PHASE_LOG ?= $(REPO)/.cache/test-phases.tsv
define phase
@scripts/phase_report.sh --run $(PHASE_LOG) $(1) $(MAKE) $(1)
endef

.PHONY: help venv collection-link prereqs images up down test test-quick lint sanity unit molecule \
        changelog-lint build-check clean

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

# The dev venv is kept in the user's cache, named by a hash of the interpreter and both pin files,
# and .venv links to it: a fresh clone with unchanged pins (CI's) links the existing one instead of
# installing every package again (101 s on a fresh machine). A .venv directory of an older checkout
# is replaced by the link.
venv: $(VENV)/.installed ## create the tool venv from the pinned requirements (reused when current)
$(VENV)/.installed: requirements/dev.in requirements/constraints.txt
	@target=$$(scripts/tool_venv.sh dev $(BOOT_PYTHON) requirements/dev.in requirements/constraints.txt) \
	  && if [ -d $(VENV) ] && [ ! -L $(VENV) ]; then rm -rf $(VENV); fi \
	  && ln -sfn "$$target" $(VENV) && echo "venv: $(VENV) -> $$target"

collection-link: ## link this checkout as votingapp.stack for ansible
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(REPO) $(COLLECTION_LINK)

prereqs: ## install Docker and the Debian test packages, start dockerd, build the local base images
	scripts/prereqs.sh all

images: prereqs app-image ## every image the lab and the scenarios use

up: prereqs venv collection-link app-image ## build and deploy the whole stack locally (the lab) and print the URLs
	$(MAKE) lab-up

down: venv collection-link ## remove the lab
	$(MAKE) lab-down

test: ## everything CI runs, each phase timed (summary at the end, also in .cache/test-phases.tsv)
	@mkdir -p $(dir $(PHASE_LOG)) && : > $(PHASE_LOG)
	$(call phase,prereqs)
	$(call phase,venv)
	$(call phase,collection-link)
	$(call phase,lint)
	$(call phase,test-monitoring-rules)
	$(call phase,changelog-lint)
	$(call phase,support-claims)
	$(call phase,sanity)
	$(call phase,unit)
	$(call phase,matrix)
	$(call phase,test-app)
	$(call phase,test-compose)
	$(call phase,test-aws)
	$(call phase,test-aws-sim)
	$(call phase,build-check)
	$(call phase,importer)
	$(call phase,ee-check)
	$(call phase,docs)
	$(call phase,molecule)
	$(call phase,test-stack)
	@scripts/phase_report.sh $(PHASE_LOG)
	@echo "make test: all checks passed"

test-quick: venv collection-link ## lint and unit tests (the inner loop, no containers)
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) test-app-quick

lint: venv collection-link ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint --strict

changelog-lint: venv
	antsibull-changelog lint

sanity: venv ## ansible-test sanity on a temporary ansible_collections/votingapp/stack checkout
	scripts/sanity.sh

unit: venv collection-link ## pytest: plugins and module_utils unit tests
	python -m pytest -q tests/unit

# Two scenarios at a time (MOLECULE_JOBS), the longest (stack) first; each one's output is printed
# whole when it ends (--output-sync), with its time.
MOLECULE_JOBS ?= 2
MOLECULE_RUN = $(or $(SCENARIO),$(filter stack,$(MOLECULE_SCENARIOS)) $(filter-out stack,$(MOLECULE_SCENARIOS)))
molecule: prereqs venv collection-link app-image ## all Molecule scenarios, two at a time (SCENARIO=name for one)
	$(MAKE) -j$(MOLECULE_JOBS) --output-sync=target $(addprefix molecule-test-,$(MOLECULE_RUN))

molecule-test-%:
	@echo "== molecule test -s $* (started $$(date +%T))"; start=$$(date +%s); \
	  molecule test -s $*; rc=$$?; \
	  echo "== molecule $*: $$(( $$(date +%s) - start )) s, exit $$rc"; exit $$rc

build-check: venv ## build the collection tarball, install it offline into an empty path, run a role from it
	scripts/build_check.sh

clean: ## remove the lab, venv, caches and build output (base images stay; `docker image prune` drops them)
	-$(MAKE) lab-down
	rm -rf $(VENV) .cache tests/output .pytest_cache .ruff_cache votingapp-stack-*.tar.gz

-include mk/*.mk
