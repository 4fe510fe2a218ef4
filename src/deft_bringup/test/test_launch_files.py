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
import yaml

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
def stand_in(monkeypatch, tmp_path):
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
    monkeypatch.setattr(graph, 'param_file_dir', lambda: tmp_path / 'generated')


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), LAUNCH_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settled(kwargs):
    """Return launch_ros kwargs with the generated overrides file read."""
    out = dict(kwargs)
    params = []
    for item in kwargs['parameters']:
        path = Path(item)
        if path.name.startswith(f'deft_{kwargs["name"]}_') and path.parent != CONFIG:
            params.append(path.read_text())
        else:
            params.append(item)
    out['parameters'] = params
    return out


REQUIRED = {'replay': {'bags'}}


@pytest.mark.parametrize('profile', graph.PROFILES)
def test_launch_file_starts_the_described_graph(stand_in, profile, tmp_path):
    description = load(f'{profile}.launch.py').generate_launch_description()
    entities = description.args[0]
    declared = [e for e in entities if 'function' not in e.kwargs]
    required = REQUIRED.get(profile, set())
    assert [(e.args[0], e.kwargs.get('default_value')) for e in declared] == [
        (a.name, None if a.name in required else a.default) for a in graph.ARGUMENTS]
    assert all(e.kwargs['description'] for e in declared)
    opaque = [e for e in entities if 'function' in e.kwargs]
    assert len(opaque) == 1
    values = {a.name: a.default for a in graph.ARGUMENTS}
    values['namespace'] = '/robot1'
    values['bags'] = str(tmp_path)
    started = opaque[0].kwargs['function'](FakeContext(values))
    expected = [n.launch_kwargs() for n in graph.describe(profile, values, config_dir=CONFIG)]
    assert [settled(n.kwargs) for n in started] == [settled(k) for k in expected]
    assert {n.kwargs['namespace'] for n in started} == {'/robot1'}


def test_replay_launch_plays_the_bags_at_the_rate(stand_in, tmp_path):
    entities = load('replay.launch.py').generate_launch_description().args[0]
    opaque = next(e for e in entities if 'function' in e.kwargs)
    values = {a.name: a.default for a in graph.ARGUMENTS}
    values.update(bags=str(tmp_path), rate='2.5')
    started = {n.kwargs['name']: settled(n.kwargs) for n in opaque.kwargs['function'](
        FakeContext(values))}
    assert list(started) == ['bag_player', 'perception', 'affordance']
    player = started['bag_player']
    assert player['executable'] == 'bag_player' and player['package'] == 'deft_cem'
    assert Path(player['parameters'][2]).name == 'profile.replay.yaml'
    assert yaml.safe_load(player['parameters'][-1]) == {'/**/bag_player': {'ros__parameters': {
        'bags': str(tmp_path), 'rate': 2.5}}}
    values['bags'] = ''
    with pytest.raises(ValueError, match='needs bags'):
        opaque.kwargs['function'](FakeContext(values))
