# stemseg: the commands a user types. See README.md.
SHELL := /bin/bash
VENV := .venv
ACT := . $(VENV)/bin/activate &&
PYTEST_ARGS ?=

.PHONY: setup test lint demo soak clean help
help:  ## list the targets
	@grep -E '^[a-z]+:.*##' Makefile | sed -E 's/:.*## /\t/'

setup:  ## create .venv with all pinned dependencies and colcon-build the ROS 2 package
	@bash scripts/setup.sh

lint: setup  ## ruff over the Python sources and tests
	@$(ACT) ruff check stemseg_core stemseg_ros test launch scripts/perception

test: setup lint  ## lint, then the whole test suite
	@$(ACT) python -m pytest test $(PYTEST_ARGS)

demo: setup  ## synthetic KITTI drive -> rosbag -> node -> metrics + report (the main job)
	@$(ACT) bash scripts/demo.sh

soak: setup  ## the node at its peak rate for 20 min of camera time + 50 lifecycle cycles; fails on growth
	@$(ACT) bash scripts/soak.sh

clean:  ## remove build outputs (keeps .venv)
	rm -rf build install log
