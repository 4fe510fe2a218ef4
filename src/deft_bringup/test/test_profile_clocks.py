"""
The sim profile runs every node on the simulated clock; the robot profile keeps its parameters.

robot_profile_params.json holds every parameter of the robot profile's nodes as they were
before the simulated clock came (common.yaml, <node>.yaml, profile.robot.yaml merged): they must
keep their values, no node of the robot profile may take its time from /clock, and the
parameters added for the sim profile must be neutral there.
"""

import json
from pathlib import Path

import pytest
import yaml

from deft_bringup import graph

CONFIG = Path(__file__).resolve().parents[1] / 'config'
ROBOT = json.loads((Path(__file__).with_name('robot_profile_params.json')).read_text())
# parameters the simulated clock added, with their values on the robot (the old behaviour)
NEUTRAL = {'arm': {'home_at_once': False, 'feedback_rate_hz': 0.0},
           'hand_driver': {'feedback_rate_hz': 0.0},
           'episode': {'hand_open_duration': 0.0}}


def merged(profile: str, node: str) -> dict:
    """Return a node's parameters as its profile's files give them (later files win)."""
    values = {}
    for name in ('common.yaml', f'{node}.yaml', f'profile.{profile}.yaml'):
        body = yaml.safe_load((CONFIG / name).read_text())
        for key in ('/**', f'/**/{node}'):
            values.update((body.get(key) or {}).get('ros__parameters', {}))
    return values


def nodes(profile: str):
    return [n.name for n in graph.NODES if profile in n.profiles]


@pytest.mark.parametrize('node', nodes('robot'))
def test_robot_profile_parameters_are_unchanged(node):
    values = merged('robot', node)
    before = ROBOT[node]
    changed = {k: (v, values.get(k)) for k, v in before.items() if values.get(k) != v}
    assert not changed, f'{node}: robot parameters changed (was, now): {changed}'
    assert not values.get('use_sim_time', False), f'{node} would run on /clock on the robot'
    for key, value in NEUTRAL.get(node, {}).items():
        assert values[key] == value, f'{node}: {key} must be {value!r} on the robot'


@pytest.mark.parametrize('node', nodes('sim'))
def test_every_node_of_the_sim_profile_uses_sim_time(node):
    assert merged('sim', node).get('use_sim_time') is True


def test_the_resolved_sim_graph_reads_the_profile_that_sets_it():
    for launch in graph.describe('sim', config_dir=CONFIG):
        assert str(CONFIG / 'profile.sim.yaml') in launch.param_files, launch.name
    for launch in graph.describe('robot', config_dir=CONFIG):
        assert not any('profile.sim' in f for f in launch.param_files), launch.name
