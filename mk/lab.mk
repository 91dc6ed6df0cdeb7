# The local lab: six systemd host containers behind the bastion.
.PHONY: lab-up lab-down test-stack
lab-up:
	@echo "lab-up: not implemented yet"; exit 1
lab-down:
	@echo "lab-down: not implemented yet"
test-stack:
	@echo "test-stack: not implemented yet"; exit 1
