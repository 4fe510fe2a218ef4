# The README's commands. Every target runs the idempotent set-up first (tools/setup.sh).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export AMENT_PREFIX_PATH := $(VENV)
export CMAKE_PREFIX_PATH := $(VENV)
export ROS_HOME := $(CURDIR)/.ros
export ROS_LOG_DIR := $(CURDIR)/.ros/log
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export HF_HUB_OFFLINE := 1
PYTEST_ARGS ?=

.PHONY: setup demo test integration lint bench clean

setup:
	@DEFT_VENV=$(VENV) tools/setup.sh

## Bring up the whole graph against the simulated twin and run one episode.
demo: setup
	deft_demo

## The whole test suite: lint, unit tests of the pure modules, integration tests over DDS.
test: setup lint
	python -m pytest -m 'not integration' $(PYTEST_ARGS)

## The extended multi-process suite (operator flow, cancel, fine_tune resume, ...): not yet green.
integration: setup
	python -m pytest -m integration $(PYTEST_ARGS)

## Benchmarks (medians over repeats), merged into results/bench.json.
bench: setup
	python -m deft_cem.bench --out results/bench.json

lint: setup
	ruff check src tools

clean:
	rm -rf $(VENV) build .ros src/*/build src/*/*.egg-info
