"""
The launch_ros files start exactly the graph description's nodes.

`launch` and `launch_ros` cannot be installed on the development machines, so this test runs
the launch files against a small recording stand-in of the few classes they use, then compares
what they would start with deft_bringup.graph.describe(). On a robot the real classes run.
"""

import importlib.util
from pathlib import Path
import sys
import types

import pytest

from deft_bringup import graph

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'
CONFIG = Path(__file__).resolve().parents[1] / 'config'


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class FakeContext:
    def __init__(self, values):
        self.values = values


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.values[self.name]


@pytest.fixture
def stand_in(monkeypatch):
    mods = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
    mods['launch'].LaunchDescription = Recorded
    mods['launch.actions'].DeclareLaunchArgument = Recorded
    mods['launch.actions'].OpaqueFunction = Recorded
    mods['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    mods['launch_ros.actions'].Node = Recorded
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(graph, 'share_dir', lambda: CONFIG.parent)


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), LAUNCH_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('profile', graph.PROFILES)
def test_launch_file_starts_the_described_graph(stand_in, profile):
    description = load(f'{profile}.launch.py').generate_launch_description()
    entities = description.args[0]
    declared = [e for e in entities if 'default_value' in e.kwargs]
    assert [(e.args[0], e.kwargs['default_value']) for e in declared] == [
        (a.name, a.default) for a in graph.ARGUMENTS]
    assert all(e.kwargs['description'] for e in declared)
    opaque = [e for e in entities if 'function' in e.kwargs]
    assert len(opaque) == 1
    values = {a.name: a.default for a in graph.ARGUMENTS}
    values['namespace'] = '/robot1'
    started = opaque[0].kwargs['function'](FakeContext(values))
    expected = [n.launch_kwargs() for n in graph.describe(profile, values, config_dir=CONFIG)]
    assert [n.kwargs for n in started] == expected
    assert {n.kwargs['namespace'] for n in started} == {'/robot1'}
