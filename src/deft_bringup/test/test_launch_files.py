"""
The launch_ros files start exactly the graph description's nodes, with the arguments they use.

`launch` and `launch_ros` cannot be installed on the development machines, so this test runs
the launch files against a small recording stand-in of the few classes they use, then compares
what they would start with deft_bringup.graph.describe(). On a robot the real classes run.
Which arguments a profile uses is read from describe() too: an argument is used when giving it
another value changes the profile's graph.
"""

import ast
import dataclasses
import importlib.util
from pathlib import Path
import sys
import types

import pytest
import yaml

from deft_bringup import graph, launch_common

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'
CONFIG = Path(__file__).resolve().parents[1] / 'config'
MAX_LAUNCH_FILE_LINES = 20


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class OpaqueFunction(Recorded):
    def run(self, context):
        """Call the function as launch does: with the context, then args and kwargs."""
        return self.kwargs['function'](context, *self.kwargs.get('args') or (),
                                       **self.kwargs.get('kwargs') or {})


class SetEnvironmentVariable(Recorded):
    pass


class FakeContext:
    def __init__(self, values):
        self.values = values


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.values[self.name]  # KeyError: not a declared argument


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    mods = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
    mods['launch'].LaunchDescription = Recorded
    mods['launch.actions'].DeclareLaunchArgument = Recorded
    mods['launch.actions'].OpaqueFunction = OpaqueFunction
    mods['launch.actions'].SetEnvironmentVariable = SetEnvironmentVariable
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


def entities(profile):
    """Return (declared arguments, the one OpaqueFunction) of a launch file."""
    found = load(f'{profile}.launch.py').generate_launch_description().args[0]
    opaque = [e for e in found if isinstance(e, OpaqueFunction)]
    assert len(opaque) == 1
    return [e for e in found if not isinstance(e, (OpaqueFunction, SetEnvironmentVariable))], \
        opaque[0]


def declared_values(profile, **values):
    """Return the declared arguments' defaults, updated with `values`."""
    out = {name: default for name, default, _ in launch_common.declared_arguments(profile)}
    out.update((k, v) for k, v in values.items() if k in out)
    return out


@pytest.mark.parametrize('profile', graph.PROFILES)
def test_launch_file_starts_the_described_graph(stand_in, profile, tmp_path):
    declared, opaque = entities(profile)
    arguments = {a.name: a for a in graph.ARGUMENTS}
    required = launch_common.REQUIRED.get(profile, ())
    offered = launch_common.PROFILE_ARGUMENTS[profile]
    assert [(e.args[0], e.kwargs.get('default_value')) for e in declared] == [
        (a.name, None if a.name in required else a.default) for a in graph.ARGUMENTS
        if a.name in offered]
    assert [e.kwargs['description'] for e in declared] == [
        arguments[e.args[0]].description for e in declared]
    # The nodes read the declared arguments only (the stand-in has no value for any other).
    values = declared_values(profile, namespace='/robot1', bags=str(tmp_path))
    started = opaque.run(FakeContext(values))
    expected = [n.launch_kwargs() for n in graph.describe(profile, values, config_dir=CONFIG)]
    assert [settled(n.kwargs) for n in started] == [settled(k) for k in expected]
    assert {n.kwargs['namespace'] for n in started} == {'/robot1'}


def test_replay_launch_plays_the_bags_at_the_rate(stand_in, tmp_path):
    _, opaque = entities('replay')
    values = declared_values('replay', bags=str(tmp_path), rate='2.5')
    started = {n.kwargs['name']: settled(n.kwargs) for n in opaque.run(FakeContext(values))}
    assert list(started) == ['bag_player', 'perception', 'affordance']
    player = started['bag_player']
    assert player['executable'] == 'bag_player' and player['package'] == 'deft_replay'
    assert Path(player['parameters'][2]).name == 'profile.replay.yaml'
    assert yaml.safe_load(player['parameters'][-1]) == {'/**/bag_player': {'ros__parameters': {
        'bags': str(tmp_path), 'rate': 2.5}}}
    values['bags'] = ''
    with pytest.raises(ValueError, match='needs bags'):
        opaque.run(FakeContext(values))


# ---- Which arguments each profile offers.
def test_profile_table_names_the_graphs_arguments():
    names = {a.name for a in graph.ARGUMENTS}
    assert set(launch_common.PROFILE_ARGUMENTS) == set(graph.PROFILES)
    offered = set()
    for profile, declared in launch_common.PROFILE_ARGUMENTS.items():
        assert set(declared) <= names and len(set(declared)) == len(declared), profile
        assert set(launch_common.REQUIRED.get(profile, ())) <= set(declared), profile
        offered.update(declared)
    assert offered == names, 'an argument no profile offers'
    with pytest.raises(ValueError, match='unknown profile'):
        launch_common.declared_arguments('lab')


def test_profiles_offer_only_their_own_arguments():
    declared = {p: {name for name, _, _ in launch_common.declared_arguments(p)}
                for p in graph.PROFILES}
    moveit = {'planning_group', 'moveit_config', 'moveit_config_package', 'robot_name'}
    assert not declared['sim'] & ({'bags', 'rate', 'camera_namespace'} | moveit)
    assert not declared['robot'] & {'bags', 'rate'}
    assert not declared['replay'] & ({'reward_source', 'camera_namespace'} | moveit)
    assert [d for n, d, _ in launch_common.declared_arguments('replay') if n == 'bags'] == [None]


# A value other than the default for every argument of the graph (paths filled in below).
PROBES = {
    'namespace': '/probe',
    'params_file': None,
    'hand_config': '/probe/hand.yaml',
    'reward_source': 'operator',
    'camera_namespace': '/probe/camera',
    'log_level': 'debug',
    'affordance_checkpoint': '/probe/affordance.pt',
    'planning_group': 'probe_group',
    'moveit_config': None,
    'moveit_config_package': 'probe_moveit_config',
    'robot_name': 'probe_robot',
    'bags': None,
    'rate': '2.0',
}
# Arguments that act only together with another: probed with that one given.
TOGETHER = {'robot_name': {'moveit_config_package': 'probe_moveit_config'},
            'moveit_config_package': {'robot_name': 'probe_robot'}}
# Parameters a node reads with one backend only: the arm's moveit_* (deft_arm.arm_node).
BACKEND_ONLY = {'arm': ('moveit_', 'moveit')}


def node_backend(node):
    """Return a node's backend: its override, else the last parameter file's value."""
    backend = None
    for path in node.param_files:
        section = (yaml.safe_load(Path(path).read_text()) or {}).get(f'/**/{node.name}') or {}
        backend = (section.get('ros__parameters') or {}).get('backend', backend)
    return node.overrides.get('backend', backend)


def effect(profile, values):
    """Return what a profile's graph is with these argument values (or why it cannot start)."""
    try:
        nodes = graph.describe(profile, values, config_dir=CONFIG)
    except ValueError as exc:
        return str(exc)
    out = []
    for node in nodes:
        prefix, backend = BACKEND_ONLY.get(node.name, (None, None))
        if prefix and node_backend(node) != backend:  # parameters the node does not read
            node = dataclasses.replace(node, overrides={
                k: v for k, v in node.overrides.items() if not k.startswith(prefix)})
        out.append(node)
    return out


@pytest.mark.parametrize('profile', graph.PROFILES)
def test_each_profile_declares_exactly_the_arguments_it_uses(profile, tmp_path, monkeypatch):
    assert set(PROBES) == {a.name for a in graph.ARGUMENTS}, 'give a new argument a probe'
    monkeypatch.setattr(graph, 'moveit_config_from_package',
                        lambda package, robot_name: f'/probe/{package}/{robot_name}.yaml')
    probes = dict(PROBES)
    for name in ('params_file', 'moveit_config'):
        probes[name] = str(tmp_path / f'{name}.yaml')
        Path(probes[name]).write_text('{}\n')
    probes['bags'] = str(tmp_path / 'other_bags')
    Path(probes['bags']).mkdir()
    used = set()
    for name, value in probes.items():
        base = {'bags': str(tmp_path), **TOGETHER.get(name, {})}
        if effect(profile, base) != effect(profile, {**base, name: value}):
            used.add(name)
    declared = {name for name, _, _ in launch_common.declared_arguments(profile)}
    assert declared == used, (f'declared but unused: {sorted(declared - used)}; '
                              f'used but undeclared: {sorted(used - declared)}')


# ---- The launch files themselves.
@pytest.mark.parametrize('profile', graph.PROFILES)
def test_launch_file_is_short_and_calls_the_helper(profile):
    path = LAUNCH_DIR / f'{profile}.launch.py'
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LAUNCH_FILE_LINES
    body = ast.parse(text).body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]   # the module docstring
    imports = [ast.unparse(n) for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == ['from deft_bringup.launch_common import launch_description']
    functions = [n for n in body if isinstance(n, ast.FunctionDef)]
    assert len(body) == 2 and [f.name for f in functions] == ['generate_launch_description']
    statements = [s for s in functions[0].body if not (
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    assert [ast.unparse(s) for s in statements] == [f"return launch_description('{profile}')"]


def test_helper_imports_launch_only_where_it_runs():
    """deft_bringup.launch_common imports without launch (it was imported above, without it)."""
    tree = ast.parse(Path(launch_common.__file__).read_text())
    top = {a.name.split('.')[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split('.')[0] for n in tree.body
            if isinstance(n, ast.ImportFrom) and n.module}
    assert not top & {'launch', 'launch_ros', 'rclpy'}


@pytest.mark.parametrize('profile', graph.PROFILES)
def test_launch_gives_the_nodes_the_dds_profile_unless_one_is_set(stand_in, monkeypatch, profile):
    monkeypatch.delenv(graph.DDS_PROFILE_VARIABLE, raising=False)
    found = load(f'{profile}.launch.py').generate_launch_description().args[0]
    env = [e.args for e in found if isinstance(e, SetEnvironmentVariable)]
    assert env == [(graph.DDS_PROFILE_VARIABLE, str(CONFIG / 'fastdds.xml'))]
    assert (CONFIG / 'fastdds.xml').is_file()
    monkeypatch.setenv(graph.DDS_PROFILE_VARIABLE, '/etc/my_dds.xml')  # the user's own wins
    found = load(f'{profile}.launch.py').generate_launch_description().args[0]
    assert not [e for e in found if isinstance(e, SetEnvironmentVariable)]
