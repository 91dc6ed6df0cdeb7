# The local lab: six systemd host containers behind the bastion (docs/lab.md).
# LAB_ARGS passes extra ansible-playbook options, e.g. LAB_ARGS='-e lab_bastion_port=8081'.
.PHONY: lab-up lab-down test-stack bench-lab
LAB_ARGS ?=

lab-up: venv collection-link ## start (or converge) the lab, deploy site.yml, verify, print the URLs (needs `make app-image`)
	ansible-playbook -i inventories/lab playbooks/lab_up.yml $(LAB_ARGS)

lab-down: venv collection-link ## remove the lab's containers, networks and volumes (keeps .lab/secrets.yml)
	ansible-playbook -i inventories/lab playbooks/lab_down.yml $(LAB_ARGS)

# Brings the lab up (or converges the running one), then votes, faults and a browser through the
# bastion. With CI=true the lab is removed at the end; locally it stays up (`make down`).
test-stack: prereqs venv collection-link app-image ## the lab end to end: votes, idempotence, fault injection, browser
	LAB_ARGS='$(LAB_ARGS)' python -m pytest -v -p no:cacheprovider --durations=15 tests/stack

bench-lab: venv collection-link ## time `make up` on a running lab (target < 2 min, changed=0) -> docs/benchmarks/lab.{json,md}
	python scripts/bench_lab.py --json docs/benchmarks/lab.json --markdown docs/benchmarks/lab.md

.PHONY: rehearse-fresh
rehearse-fresh: ## fresh clone + empty HOME + rebuilt base images, then `make up` and `make test` timed -> docs/benchmarks/fresh.md (about 40 min)
	scripts/rehearse_fresh.sh
