# Monitoring: the alert rules of votingapp.stack.monitoring, rendered with the role's defaults (the
# production windows), checked and unit-tested with Debian's promtool (package prometheus, from
# `make prereqs`). Seconds; no containers.
.PHONY: test-monitoring-rules
MONITORING_RULES_OUT := $(REPO)/.cache/monitoring

test-monitoring-rules: venv collection-link ## promtool check + unit tests of the monitoring role's alert rules
	@command -v promtool >/dev/null || { echo "promtool missing: make prereqs (Debian package prometheus)"; exit 1; }
	ansible-playbook -i localhost, -c local tests/monitoring/render_rules.yml -e monitoring_rules_out=$(MONITORING_RULES_OUT) -e ansible_python_interpreter=$(BIN)/python
	promtool check rules $(MONITORING_RULES_OUT)/votingapp.yml
	@# promtool finds rule_files next to the test file (and only warns when they are missing).
	cp tests/monitoring/votingapp.rules.test.yml $(MONITORING_RULES_OUT)/
	promtool test rules $(MONITORING_RULES_OUT)/votingapp.rules.test.yml
