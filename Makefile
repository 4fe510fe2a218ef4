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

## DEFT on one task with a learned prior: the affordance model trained on simulated human
## demonstrations of the task (deft_affordance_recipe, the first time; cached in DEMO_PRIOR),
## then the whole graph against the twin: fine_tune (30 episodes, a line each), the task success
## of the first and last 10 episodes, pi trained on the 10 best and run on 5 test
## configurations. Ends with success: true only when the last 10 episodes beat the first 10.
DEMO_TASK ?= open the drawer
DEMO_SIM_TASK ?= open_drawer
DEMO_PRIOR ?= $(CURDIR)/.ros/deft/demo_prior/$(DEMO_SIM_TASK)
demo: setup
	@if [ -f $(DEMO_PRIOR)/summary.json ]; then echo "prior: cached $(DEMO_PRIOR)/model.pt"; \
	else deft_affordance_recipe --tasks $(DEMO_SIM_TASK) --n 120 --budget 150 --trials 10 \
	  --no-oracle --threads 1 --out $(DEMO_PRIOR); fi
	deft_demo --task "$(DEMO_TASK)" --affordance_checkpoint $(DEMO_PRIOR)/model.pt \
	  --allow_random --require_learning --policy_trials 5

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
	python -m deft_perception.bench_segment_service --out results/bench.json
	python -m deft_eval.bench_prior --out results/bench.json --sam-repeats 2
	python -m deft_eval.bench_bag --out results/bench.json
	python -m deft_eval.bench_paper --out results/bench.json --seeds 3 --jobs 2
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
