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
export MUJOCO_GL ?= egl
PYTEST_ARGS ?=

.PHONY: setup demo test unit lint bench screenshots clean

setup:
	@DEFT_VENV=$(VENV) tools/setup.sh

## Bring up the whole graph against the simulated twin and fine-tune (deft_demo: 30 episodes, a
## line per episode with its phases, then a result block with success: true/false).
demo: setup
	deft_demo

## The whole test suite: lint, unit tests of the pure modules, and the integration tests that start
## the graph as real processes over DDS (operator flow, cancel, fine_tune with SIGKILL and resume).
test: setup lint
	python -m pytest $(PYTEST_ARGS)

## Only the fast tests (no node processes: neither the integration nor the demo smoke tests).
unit: setup
	python -m pytest -m 'not integration and not smoke' $(PYTEST_ARGS)

## Benchmarks (medians over repeats), merged into results/bench.json.
bench: setup
	python -m deft_cem.bench --out results/bench.json
	python -m deft_hand_driver.bench_bus --out results/bench.json
	python -m deft_sim.bench_sim --out results/bench.json
	python -m deft_perception.bench_perception --out results/bench.json --sam-repeats 2
	python -m deft_eval.bench_prior --out results/bench.json --sam-repeats 2
	python -m deft_eval.bench_bag --out results/bench.json
	python -m deft_eval.bench_table1 --out results/bench.json --trials 10 --episodes 12 --warmup 4
	python -m deft_bringup.bench_restart --out results/bench.json --cycles 20 --repeats 3
	python -m deft_bringup.bench_sim_graph --out results/bench.json --episodes 5 --demo-repeats 1

## The operator panel's pictures in docs/img/panel_*.png, taken by its tests against the real sim
## graph (headless): a fine_tune under way and an episode waiting for the operator's score.
screenshots: setup
	DEFT_SCREENSHOTS=$(CURDIR)/docs/img QT_QPA_PLATFORM=offscreen \
	  python -m pytest -q src/deft_rqt/test/test_panel.py $(PYTEST_ARGS)

lint: setup
	ruff check src tools

clean:
	rm -rf $(VENV) build .ros src/*/build src/*/*.egg-info
