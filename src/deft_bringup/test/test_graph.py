import ast
import importlib.util
import json
from pathlib import Path
import re

import pytest
import yaml

from deft_bringup import graph

CONFIG = Path(__file__).resolve().parents[1] / 'config'


def test_sim_profile_has_every_node_in_the_namespace():
    nodes = graph.describe('sim', config_dir=CONFIG)
    assert [n.name for n in nodes] == ['sim', 'perception', 'affordance', 'hand_driver', 'arm',
                                       'episode']
    for n in nodes:
        assert n.namespace == '/deft'
        assert [Path(f).name for f in n.param_files] == [
            'common.yaml', f'{n.name}.yaml', 'profile.sim.yaml']
        assert n.remappings == ()


RS_REMAPS = {
    'camera/color/image_raw': '/rs/color/image_raw',
    'camera/depth/image_raw': '/rs/aligned_depth_to_color/image_raw',
    'camera/color/camera_info': '/rs/color/camera_info'}


def test_robot_profile_drops_the_simulator_and_remaps_the_camera():
    nodes = {n.name: n for n in graph.describe(
        'robot', {'camera_namespace': '/rs/'}, config_dir=CONFIG)}
    assert 'sim' not in nodes and len(nodes) == 5
    for name in ('perception', 'affordance', 'episode'):  # each subscribes to camera/...
        assert dict(nodes[name].remappings) == RS_REMAPS, name
        args = nodes[name].ros_args()
        assert '-r' in args and 'camera/color/camera_info:=/rs/color/camera_info' in args
        assert nodes[name].launch_kwargs()['remappings'] == list(RS_REMAPS.items())
    for name in ('hand_driver', 'arm'):
        assert nodes[name].remappings == (), name


def camera_topics_read(module: str) -> set:
    """
    Return the camera/... topic names a node module reads.

    That is every string literal naming one that is not an argument of create_publisher (the sim
    node publishes the camera).
    """
    source = Path(importlib.util.find_spec(module).origin).read_text()
    published = set()
    literals = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'create_publisher':
            published.update(id(a) for a in node.args)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r'camera/[\w/]+', node.value):
            literals.add((id(node), node.value))
    return {value for key, value in literals if key not in published}


def test_every_node_that_reads_the_camera_is_remapped_on_the_robot():
    """The remaps follow the nodes' own subscriptions, read from their source."""
    robot = {n.name: n for n in graph.describe('robot', config_dir=CONFIG)}
    readers = set()
    for spec in graph.NODES:
        topics = camera_topics_read(f'{spec.package}.{spec.executable}')
        assert spec.camera_input == bool(topics), (spec.name, topics)
        if topics:
            readers.add(spec.name)
            assert topics <= set(RS_REMAPS), (spec.name, topics)
            if spec.name in robot:
                assert set(dict(robot[spec.name].remappings)) >= topics, spec.name
    assert readers == {'perception', 'affordance', 'episode'}


def test_arguments_and_overrides_reach_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(graph, 'param_file_dir', lambda: tmp_path / 'params')
    extra = tmp_path / 'mine.yaml'
    extra.write_text('/**:\n  ros__parameters: {}\n')
    nodes = graph.describe('sim', {'namespace': '/lab', 'reward_source': 'operator',
                                   'params_file': str(extra), 'hand_config': '/h.yaml'},
                           overrides={'sim': {'camera_rate_hz': 2.0, 'object_size': [1, 2]}},
                           config_dir=CONFIG)
    by = {n.name: n for n in nodes}
    args = by['sim'].ros_args()
    assert args[:5] == ['--ros-args', '-r', '__node:=sim', '-r', '__ns:=/lab']
    assert args[-8:].count('--params-file') == 1 and str(extra) in args
    assert 'camera_rate_hz:=2.0' in args and 'object_size:=[1, 2]' in args
    assert json.loads(args[args.index('-p') + 1].split(':=')[1]) == '/h.yaml'
    assert by['episode'].overrides['default_reward_source'] == 'operator'
    assert all(n.overrides['hand_config'] == '/h.yaml' for n in nodes)
    # with an overrides file, it is the last parameter file and holds the node's own section
    with_file = by['sim'].ros_args('/tmp/o.yaml')
    files = [with_file[i + 1] for i, a in enumerate(with_file) if a == '--params-file']
    assert files[-1] == '/tmp/o.yaml' and '-p' not in with_file
    section = yaml.safe_load(by['sim'].overrides_yaml())
    assert section == {'/**/sim': {'ros__parameters': {
        'hand_config': '/h.yaml', 'camera_rate_hz': 2.0, 'object_size': [1, 2]}}}
    kwargs = by['sim'].launch_kwargs()
    last = Path(kwargs['parameters'][-1])
    assert last.parent == tmp_path / 'params'
    assert yaml.safe_load(last.read_text()) == section


def test_launch_overrides_files_do_not_pile_up(tmp_path, monkeypatch):
    """Launching the same graph again reuses its overrides files; other values get their own."""
    monkeypatch.setattr(graph, 'param_file_dir', lambda: tmp_path / 'params')
    first = [n.launch_kwargs()['parameters'][-1] for n in graph.describe(
        'sim', {'hand_config': '/h.yaml'}, config_dir=CONFIG)]
    again = [n.launch_kwargs()['parameters'][-1] for n in graph.describe(
        'sim', {'hand_config': '/h.yaml'}, config_dir=CONFIG)]
    assert first == again and len(set(first)) == 6
    assert sorted(p.name for p in (tmp_path / 'params').iterdir()) == sorted(
        Path(f).name for f in first)
    other = graph.describe('sim', {'hand_config': '/other.yaml'}, config_dir=CONFIG)[0]
    path = Path(other.launch_kwargs()['parameters'][-1])
    assert path not in [Path(f) for f in first]
    assert yaml.safe_load(path.read_text())['/**/sim']['ros__parameters'] == {
        'hand_config': '/other.yaml'}


def test_replay_profile_plays_bags_into_perception_and_affordance(tmp_path, monkeypatch):
    (tmp_path / 'run').mkdir()
    monkeypatch.chdir(tmp_path)
    nodes = {n.name: n for n in graph.describe(
        'replay', {'bags': 'run', 'rate': '2', 'namespace': '/lab'}, config_dir=CONFIG)}
    assert list(nodes) == ['bag_player', 'perception', 'affordance']
    player = nodes['bag_player']
    assert (player.package, player.executable) == ('deft_replay', 'bag_player')
    assert player.overrides == {'bags': str(tmp_path / 'run'), 'rate': 2.0}  # absolute
    for n in nodes.values():
        assert n.namespace == '/lab' and n.remappings == ()  # the recorded camera topic names
        assert [Path(f).name for f in n.param_files] == [
            'common.yaml', f'{n.name}.yaml', 'profile.replay.yaml']
    profile = yaml.safe_load((CONFIG / 'profile.replay.yaml').read_text())
    assert profile['/**/perception']['ros__parameters']['backend'] == 'depth'
    assert profile['/**/bag_player']['ros__parameters']['exit_when_done'] is False
    # the rate is the parameter files' unless given; bags may also come as an override
    only = graph.describe('replay', overrides={'bag_player': {'bags': str(tmp_path)}},
                          config_dir=CONFIG, only=['bag_player'])
    assert only[0].overrides == {'bags': str(tmp_path)}
    # the other profiles have no player and ignore the replay arguments
    sim = graph.describe('sim', {'bags': 'run', 'rate': '2'}, config_dir=CONFIG)
    assert 'bag_player' not in [n.name for n in sim]


@pytest.mark.parametrize('call,match', [
    (lambda: graph.describe('moon', config_dir=CONFIG), 'unknown profile'),
    (lambda: graph.describe('sim', {'bogus': 1}, config_dir=CONFIG), 'unknown launch arguments'),
    (lambda: graph.describe('robot', overrides={'sim': {}}, config_dir=CONFIG), "no node 'sim'"),
    (lambda: graph.describe('sim', {'params_file': '/nope.yaml'}, config_dir=CONFIG),
     'not found: /nope.yaml'),
    (lambda: graph.describe('replay', config_dir=CONFIG), 'replay profile needs bags'),
    (lambda: graph.describe('replay', {'bags': '/nope/bags'}, config_dir=CONFIG),
     'bags: /nope/bags does not exist'),
    (lambda: graph.describe('replay', {'bags': '/', 'rate': 'fast'}, config_dir=CONFIG),
     "rate must be a number above 0, got 'fast'"),
    (lambda: graph.describe('replay', {'bags': '/', 'rate': '0'}, config_dir=CONFIG),
     'rate must be a number above 0'),
    (lambda: graph.describe('robot', {'moveit_config': '/nope.yaml'}, config_dir=CONFIG),
     'moveit_config: /nope.yaml is not a file'),
    (lambda: graph.describe('robot', {'moveit_config_package': 'my_arm_moveit_config'},
                            config_dir=CONFIG), 'needs robot_name'),
    (lambda: graph.describe('robot', {'moveit_config_package': 'p', 'moveit_config': '/x'},
                            config_dir=CONFIG), 'not both'),
])
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_robot_arguments_reach_the_arm_and_the_affordance_model(tmp_path):
    moveit = tmp_path / 'moveit.yaml'
    moveit.write_text('/**:\n  ros__parameters: {robot_description: "<robot/>"}\n')
    nodes = {n.name: n for n in graph.describe(
        'robot', {'planning_group': 'ur_manipulator', 'moveit_config': str(moveit),
                  'affordance_checkpoint': str(tmp_path / 'aff.pt')}, config_dir=CONFIG)}
    assert nodes['arm'].overrides['moveit_planning_group'] == 'ur_manipulator'
    assert nodes['arm'].overrides['moveit_config_file'] == str(moveit)
    assert nodes['affordance'].overrides['backend'] == 'model'
    assert nodes['affordance'].overrides['checkpoint'] == str(tmp_path / 'aff.pt')
    # without them the parameter files decide
    plain = {n.name: n for n in graph.describe('robot', config_dir=CONFIG)}
    assert 'moveit_planning_group' not in plain['arm'].overrides
    assert 'backend' not in plain['affordance'].overrides


def test_moveit_config_package_is_built_into_a_parameter_file(monkeypatch):
    """MoveItConfigsBuilder(...).to_dict() lands under /** in the file the arm node gets."""
    import sys
    import types

    calls = []

    class Builder:
        def __init__(self, name, package_name):
            calls.append((name, package_name))

        def to_dict(self):
            return {'robot_description': '<robot name="ur5e"/>',
                    'robot_description_kinematics': {'arm': {'kinematics_solver_timeout': 0.05}}}

    monkeypatch.setitem(sys.modules, 'moveit_configs_utils',
                        types.SimpleNamespace(MoveItConfigsBuilder=Builder))
    nodes = {n.name: n for n in graph.describe(
        'robot', {'moveit_config_package': 'ur_moveit_config', 'robot_name': 'ur5e'},
        config_dir=CONFIG)}
    assert calls == [('ur5e', 'ur_moveit_config')]
    path = Path(nodes['arm'].overrides['moveit_config_file'])
    try:
        params = yaml.safe_load(path.read_text())['/**']['ros__parameters']
        assert params['robot_description'] == '<robot name="ur5e"/>'
        assert params['robot_description_kinematics']['arm']['kinematics_solver_timeout'] == 0.05
    finally:
        path.unlink()
    monkeypatch.setitem(sys.modules, 'moveit_configs_utils', None)  # not installed
    with pytest.raises(ValueError, match='needs moveit_configs_utils'):
        graph.describe('robot', {'moveit_config_package': 'p', 'robot_name': 'r'},
                       config_dir=CONFIG)


def test_nodes_respawn_but_the_one_shot_player():
    for profile in graph.PROFILES:
        over = {'bag_player': {'bags': str(CONFIG)}} if profile == 'replay' else None
        for node in graph.describe(profile, config_dir=CONFIG, overrides=over):
            kw = node.launch_kwargs()
            one_shot = node.name == 'bag_player'
            assert kw['respawn'] is (not one_shot) and node.respawn is (not one_shot)
            assert kw['respawn_delay'] == graph.RESPAWN_DELAY
            assert kw['respawn_max_retries'] == (0 if one_shot else graph.RESPAWN_MAX_RETRIES)
