# AWS modules, roles and playbooks against a moto server.
.PHONY: test-aws
test-aws: venv collection-link
	@echo "test-aws: not implemented yet"; exit 1
