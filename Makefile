# The two commands a fresh machine needs (see README):
#   make demo   - the main job: set up, then run the end-to-end demo on the shipped model
#   make test   - set up, then run the whole test suite
# Both are idempotent and safe to re-run; everything lives in .venv and .ros_ws.

SHELL := /bin/bash
ENV := scripts/with_env.sh

.PHONY: setup setup-python setup-ros demo test bench clean

setup-python:
	@scripts/setup_env.sh

setup-ros: setup-python
	@scripts/setup_ros.sh

setup: setup-python setup-ros

demo: setup
	@$(ENV) python -m ckd_tracker_ros.demo

test: setup
	@$(ENV) python -m pytest -q test

clean:
	rm -rf .ros_ws build install log demo_out
