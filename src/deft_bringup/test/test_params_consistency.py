"""Every parameter in config/*.yaml is declared by its node with a matching type; and back."""

import importlib
from pathlib import Path

import pytest
import yaml

from deft_bringup import graph

CONFIG = Path(__file__).resolve().parents[1] / 'config'
SHARED = {'base_frame', 'camera_to_base', 'hand_config'}
BUILTIN = {'use_sim_time'}  # declared by every rclpy node itself (the sim profile sets it)


def node_params(spec):
    module = importlib.import_module(f'{spec.package}.{spec.executable}')
    return {p.name: p for p in module.PARAMS}


def kind(value):
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, (list, tuple)):
        return 'list'
    return type(value).__name__


def sections():
    for file in sorted(CONFIG.glob('*.yaml')):
        for key, body in yaml.safe_load(file.read_text()).items():
            yield file.name, key, body['ros__parameters']


SPECS = {s.name: s for s in graph.NODES}


@pytest.mark.parametrize('file,key,values', list(sections()),
                         ids=[f'{f}:{k}' for f, k, _ in sections()])
def test_every_key_is_a_declared_parameter(file, key, values):
    if key == '/**':
        declared = {}
        for spec in graph.NODES:
            declared.update(node_params(spec))
        assert set(values) <= SHARED | BUILTIN, \
            f'{file}: only shared parameters belong under /**'
        values = {k: v for k, v in values.items() if k not in BUILTIN}
    else:
        assert key.startswith('/**/'), f'{file}: key {key!r} should be /**/<node>'
        name = key[4:]
        assert name in SPECS, f'{file}: no node {name!r} in the graph'
        declared = node_params(SPECS[name])
    for param, value in values.items():
        assert param in declared, f'{file}: {key} sets undeclared parameter {param!r}'
        p = declared[param]
        if p.default == [] or value == []:
            continue
        assert kind(value) == kind(p.default), f'{file}: {param} has the wrong type'
        if p.choices and key != '/**':
            backend_later = file.startswith('profile.robot') and param == 'backend'
            assert value in p.choices or backend_later, f'{file}: {param}={value!r}'


@pytest.mark.parametrize('spec', graph.NODES, ids=lambda s: s.name)
def test_node_yaml_lists_every_parameter_with_a_description(spec):
    params = node_params(spec)
    body = yaml.safe_load((CONFIG / f'{spec.name}.yaml').read_text())[f'/**/{spec.name}']
    listed = set(body['ros__parameters'])
    missing = set(params) - listed - SHARED
    assert not missing, f'{spec.name}.yaml does not list {sorted(missing)}'
    assert all(p.description for p in params.values())
    assert SHARED & set(params) <= set(yaml.safe_load(
        (CONFIG / 'common.yaml').read_text())['/**']['ros__parameters'])
