# AWS modules, roles and playbooks against a moto server (no AWS account needed).
# tests/integration/conftest.py starts moto in-process on a free 127.0.0.1 port and drives the
# integration targets and playbooks/aws_{up,down}.yml with ansible-playbook; three workers keep the
# independent tests (each with its own moto server) off each other's critical path.
.PHONY: test-aws
test-aws: venv collection-link ## AWS: module unit tests, integration targets and aws_up/aws_down against moto
	python -m pytest -q -p no:cacheprovider tests/unit/plugins/module_utils/test_elbv2_rules.py \
	  tests/unit/plugins/module_utils/test_elbv2_health.py tests/unit/plugins/modules/test_alb_listener_rules.py
	python -m pytest -q -p no:cacheprovider -n 3 tests/integration
