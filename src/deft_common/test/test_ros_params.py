"""In-process: parameter tables declare typed, ranged, described parameters; bad values fail."""

import pytest
import rclpy
from rclpy.parameter import Parameter

from deft_common.ros_params import Param, ParameterError, declare

TABLE = (
    Param('rate', 50.0, 'Loop rate, Hz.', range=(1.0, 100.0)),
    Param('count', 3, 'How many.', range=(1, 10)),
    Param('backend', 'fake', 'Backend.', choices=('fake', 'real')),
    Param('names', ['a', 'b'], 'Names.'),
)


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make(ctx, overrides):
    return rclpy.create_node('params_test', parameter_overrides=overrides, context=ctx)


def test_defaults_descriptions_and_overrides(context):
    node = make(context, [Parameter('rate', value=20.0)])
    values = declare(node, TABLE)
    assert values.rate == 20.0 and values.count == 3 and values.names == ['a', 'b']
    desc = node.describe_parameter('backend')
    assert 'One of: fake, real.' in desc.description
    assert node.describe_parameter('rate').floating_point_range[0].to_value == 100.0
    node.destroy_node()


@pytest.mark.parametrize('override,match', [
    (Parameter('rate', value=500.0), 'rate'),
    (Parameter('count', value=0), 'count'),
    (Parameter('backend', value='dynamixel'), 'expected one of fake, real'),
    (Parameter('rate', value='fast'), 'rate'),
])
def test_bad_values_name_the_parameter(context, override, match):
    node = make(context, [override])
    with pytest.raises(ParameterError, match=match):
        declare(node, TABLE)
    node.destroy_node()


def test_help_lists_the_parameters_without_starting_ros(capsys):
    from deft_common.node_main import run_node
    from deft_common.ros_params import Param

    class Player:
        """Plays bags.

        More text.
        """

    def never_built():
        raise AssertionError('--help must not build the node')
    never_built.__doc__ = Player.__doc__
    params = (Param('rate', 1.0, 'Playback speed: ' + 'very ' * 30 + 'fast.', range=(0.01, 100.0)),
              Param('mode', 'a', 'What to do.', choices=('a', 'b')))
    for argv in (['deft_play_bag', '--help'], ['deft_play_bag', '-h', '--ros-args', '-p', 'x:=1']):
        assert run_node(never_built, argv, params=params) == 0
        out = capsys.readouterr().out
        assert out.startswith('usage: deft_play_bag [--ros-args -p NAME:=VALUE')
        assert 'Plays bags.' in out and 'More text' not in out
        assert '  rate (1.0, 0.01 .. 100.0)' in out and "  mode ('a', one of a | b)" in out
        assert max(len(line) for line in out.splitlines()) <= 99
