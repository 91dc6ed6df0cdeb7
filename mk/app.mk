# app_src: image, tests, benchmark (owned by the application).
.PHONY: app-image test-app test-app-quick bench
app-image: prereqs
	@echo "app-image: not implemented yet"; exit 1
test-app: venv
	@echo "test-app: not implemented yet"; exit 1
test-app-quick: venv
	@echo "test-app-quick: not implemented yet"; exit 1
bench: venv
	@echo "bench: not implemented yet"; exit 1
