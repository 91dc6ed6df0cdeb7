# The application image, built on the controller and saved under .cache/images/ (owned by the app roles).
.PHONY: app-image
APP_BASE_IMAGE ?= votingapp-python:bookworm
app-image: venv collection-link ## build the app image from app_src (content-hash tag) and save it under .cache/images/
	BASE_IMAGE=$(APP_BASE_IMAGE) ansible-playbook -i localhost, playbooks/build_image.yml
