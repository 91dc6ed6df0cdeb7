# The ecosystem's own gates (issue 18): Galaxy's importer on the built tarball, the antsibull-docs
# site, the execution-environment definition, and sanity + unit tests on every ansible-core line
# meta/runtime.yml admits. Each tool runs from its own cached venv (scripts/tool_venv.sh) built from
# a fully pinned requirements/<tool>.txt, so the dev venv keeps its versions and a second run
# reuses the venvs.
.PHONY: publish-tarball importer docs ee-check matrix support-claims

TOOL_VENV := scripts/tool_venv.sh
MATRIX_DIR := $(REPO)/.cache/matrix
PUBLISH_DIR := $(REPO)/.cache/publish
PUBLISH_TARBALL = $(PUBLISH_DIR)/votingapp-stack-$(shell sed -n 's/^version: //p' galaxy.yml).tar.gz
PYTHON311 ?= $(BOOT_PYTHON)
# ansible-core 2.20 and newer need Python 3.12; pyenv has it on this machine kind. Found through
# pyenv's directory rather than its shim, which runs only the global versions (and the fresh-machine
# rehearsal points HOME elsewhere).
PYENV_DIRS := $(PYENV_ROOT) $(HOME)/.pyenv $(patsubst %/shims/,%,$(dir $(shell command -v python3.11)))
PYTHON312 ?= $(firstword $(wildcard $(addsuffix /versions/3.12*/bin/python3.12,$(PYENV_DIRS))) $(shell command -v python3.12))
# The dev venv has 2.19 (`make sanity`, `make unit`); these are the other lines requires_ansible
# admits that this machine can run.
MATRIX_VERSIONS ?= 2.17 2.18 2.20 2.21
MATRIX_JOBS ?= 4
# The collections votingapp.stack depends on, from the `ansible` package in the dev venv; the tool
# venvs hold ansible-core only.
DEPS_COLLECTIONS = $(shell $(BIN)/python -c 'import ansible_collections.amazon.aws as m, pathlib; print(pathlib.Path(list(m.__path__)[0]).parents[2])')

publish-tarball: venv
	mkdir -p $(PUBLISH_DIR)
	ansible-galaxy collection build $(REPO) --output-path $(PUBLISH_DIR) --force >/dev/null

# The importer's ansible-doc needs the dependencies for our AWS modules' amazon.aws doc fragments,
# as Galaxy's own import environment has them.
importer: publish-tarball $(MATRIX_DIR)/deps/.linked ## galaxy-importer (Galaxy's import step) on the built tarball: no warning but the listed ones
	venv=$$($(TOOL_VENV) importer $(PYTHON311) requirements/importer.txt); \
	PYTHONPATH=$(MATRIX_DIR)/deps python scripts/galaxy_import.py $$venv/bin/python $(PUBLISH_TARBALL)

DOCS_DIR := $(REPO)/.cache/docs
# `antsibull-docs lint-collection-docs --plugin-docs` is not run: it copies the collection alone into
# a temporary tree, where amazon.aws's doc fragments of our AWS modules cannot be found (it failed on
# them; it also found one bad O() reference, fixed). ansible-test's validate-modules checks the
# modules' markup, and `--fail-on-error` plus Sphinx's nitpicky mode the rendered site.
docs: venv collection-link ## the antsibull-docs Sphinx site (modules, roles, playbooks, quickstart) -> .cache/docs/html, warnings fail
	@venv=$$($(TOOL_VENV) docs $(PYTHON311) requirements/docs.txt); set -x; \
	export ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS_DIR):$(DEPS_COLLECTIONS); \
	rm -rf $(DOCS_DIR) && mkdir -p $(DOCS_DIR) && mkdir -m 700 $(DOCS_DIR)/rst; \
	$$venv/bin/antsibull-docs --config-file docs/site/antsibull-docs.cfg collection --use-current \
	  --fail-on-error --dest-dir $(DOCS_DIR)/rst votingapp.stack; \
	cp docs/site/index.rst $(DOCS_DIR)/rst/; \
	python scripts/docs_pages.py $(DOCS_DIR)/rst; \
	$$venv/bin/sphinx-build -b html -W --keep-going -n -q -c docs/site $(DOCS_DIR)/rst $(DOCS_DIR)/html
	@echo "docs: $(DOCS_DIR)/html/index.html"

EE_DIR := $(PUBLISH_DIR)/ee
ee-check: publish-tarball ## ansible-builder: the collection's EE dependencies introspect as declared, docs/execution-environment.yml creates a context
	@venv=$$($(TOOL_VENV) builder $(PYTHON311) requirements/builder.txt); set -x; \
	rm -rf $(EE_DIR) && mkdir -p $(EE_DIR); \
	ansible-galaxy collection install $(PUBLISH_TARBALL) -p $(EE_DIR)/collections --no-deps --offline --force >/dev/null; \
	$$venv/bin/ansible-builder introspect --sanitize $(EE_DIR)/collections > $(EE_DIR)/introspect.yml; \
	cat $(EE_DIR)/introspect.yml; \
	grep -hvE '^\s*(#|$$)' requirements.txt bindep.txt | while read -r dep; do \
	  grep -qF -- "$$dep  # from collection votingapp.stack" $(EE_DIR)/introspect.yml \
	    || { echo "ee-check: ansible-builder does not see '$$dep' from meta/execution-environment.yml" >&2; exit 1; }; \
	done; \
	$$venv/bin/ansible-builder create -f docs/execution-environment.yml --context $(EE_DIR)/context; \
	grep -q 'votingapp.stack' $(EE_DIR)/context/_build/requirements.yml

# The dependency collections as an import path of their own (ansible-test's import test and the
# unit tests import them), without the dev venv's ansible-core.
$(MATRIX_DIR)/deps/.linked: $(VENV)/.installed
	mkdir -p $(MATRIX_DIR)/deps/ansible_collections
	for ns in amazon community ansible; do ln -sfn $(DEPS_COLLECTIONS)/ansible_collections/$$ns $(MATRIX_DIR)/deps/ansible_collections/$$ns; done
	touch $@

matrix: venv collection-link $(MATRIX_DIR)/deps/.linked ## sanity + unit tests on ansible-core 2.17, 2.18 (Python 3.11), 2.20, 2.21 (3.12), in parallel
	$(MAKE) -j$(MATRIX_JOBS) --output-sync=target $(addprefix matrix-,$(MATRIX_VERSIONS))

# A HOME per line: ansible-test keeps its sanity venvs under ~/.ansible/test/venv, keyed by Python
# and requirements, and two lines creating the same one at once (2.20 and 2.21 on 3.12) broke it.
# Kept under the user's cache, not the checkout, so a new clone reuses them like the tool venvs.
MATRIX_HOMES ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/votingapp/ansible-test-home
# The sanity tests that depend on the ansible-core line (module docs and argument specs, imports,
# runtime metadata, ansible-doc, compile). pylint, pep8, yamllint and changelog run linters whose
# versions ansible-test pins per line: they judge our style, not compatibility with that line, and
# run once in `make sanity`. Building their venvs for four more lines took over 10 minutes on a
# fresh machine; `make matrix MATRIX_SANITY_SKIP=` runs every test on every line.
MATRIX_SANITY_SKIP ?= pylint pep8 yamllint changelog
matrix-%: $(MATRIX_DIR)/deps/.linked
	@py=$(if $(filter 2.17 2.18 2.19,$*),$(PYTHON311),$(PYTHON312)); \
	venv=$$($(TOOL_VENV) matrix-$* $$py requirements/matrix-$*.txt); \
	start=$$(date +%s); \
	mkdir -p $(MATRIX_HOMES)/$*; \
	export PATH=$$venv/bin:$$PATH PYTHONPATH=$(MATRIX_DIR)/deps HOME=$(MATRIX_HOMES)/$*; \
	echo "== matrix $*: $$(ansible --version | head -1), $$(python --version)"; \
	scripts/sanity.sh $(addprefix --skip-test ,$(MATRIX_SANITY_SKIP)) >$(MATRIX_DIR)/sanity-$*.log 2>&1 \
	  || { cat $(MATRIX_DIR)/sanity-$*.log; echo "matrix $*: sanity failed" >&2; exit 1; }; \
	tail -3 $(MATRIX_DIR)/sanity-$*.log; \
	python -m pytest -q -p no:cacheprovider tests/unit/plugins; \
	echo "== matrix $*: sanity and unit passed in $$(( $$(date +%s) - start )) s"

support-claims: venv ## roles' meta platforms and min_ansible_version, runtime.yml, README and galaxy.yml agree with what is tested
	python scripts/support_claims.py
