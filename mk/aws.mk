# AWS modules, roles and playbooks against a moto server (no AWS account needed).
# tests/integration/conftest.py starts moto in-process on a free 127.0.0.1 port and drives the
# integration targets and playbooks/aws_{up,down}.yml with ansible-playbook; three workers keep the
# independent tests (each with its own moto server) off each other's critical path.
.PHONY: test-aws
test-aws: venv collection-link ## AWS: module unit tests, integration targets and aws_up/aws_down against moto
	python -m pytest -q -p no:cacheprovider tests/unit/plugins/module_utils/test_elbv2_rules.py \
	  tests/unit/plugins/module_utils/test_elbv2_health.py tests/unit/plugins/modules/test_alb_listener_rules.py
	python -m pytest -q -p no:cacheprovider -n 3 --durations=10 tests/integration

# The emulated account (scripts/aws_sim.py): moto + one sshd stand-in container per EC2 instance.
# `eval "$(make -s aws-sim-up)"` points Ansible at it; then run playbooks/aws_up.yml as on AWS.
.PHONY: aws-sim-up aws-sim-down test-aws-sim test-aws-sim-provision
aws-sim-up: venv collection-link ## emulated AWS account: moto on 127.0.0.1 and the stand-in watcher; prints the environment
	python scripts/aws_sim.py up

aws-sim-down: venv ## remove the emulated account: stand-ins, their networks, the watcher, moto
	python scripts/aws_sim.py down

# The whole path of docs/aws.md on the emulated account (part of `make test`): aws_up without the
# ALB with site.yml over SSH through the bastion, verify.yml, votes, aws_up with the ALB changing no
# host, aws_down twice. Each phase, play and slowest task prints its time.
test-aws-sim: prereqs venv collection-link app-image ## emulated account end to end: aws_up over SSH with become through the bastion, verify ALL GREEN, votes, ALB re-run changed=0 on hosts, aws_down twice
	BASE_IMAGE=$(APP_BASE_IMAGE) python -m pytest -q -s -p no:cacheprovider tests/aws_sim

# The same test without site.yml, verify.yml and the votes (aws_up_configure_hosts=false): a quick
# check of provisioning, SSH, the flow matrix and the ALB targets (about 5 minutes).
test-aws-sim-provision: prereqs venv collection-link app-image ## emulated account, provisioning only: aws_up without site.yml, SSH, flows, ALB targets, aws_down twice
	AWS_SIM_PROVISION_ONLY=1 BASE_IMAGE=$(APP_BASE_IMAGE) python -m pytest -q -s -p no:cacheprovider tests/aws_sim
