"""hand/grasp goals with a MANO pose: retargeted by name onto the hand, checked like the others."""

from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from deft_common.node_main import ConfigurationError  # noqa: E402
from deft_hand_driver import mano  # noqa: E402
from deft_hand_driver.hand_driver_node import HandDriverNode  # noqa: E402
from deft_hand_driver.mano import ManoModel  # noqa: E402
from deft_interfaces.action import HandGrasp  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'


@pytest.fixture
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = HandDriverNode(context=ctx, parameter_overrides=[
        Parameter('hand_config', value=str(CONFIG_DIR / 'leap_16dof.yaml')),
        Parameter('retargeting_config', value=str(CONFIG_DIR / 'leap_16dof_retargeting.yaml'))])
    yield n
    n.destroy_node()
    ctx.try_shutdown()


def fist():
    fingers = {f'{f}{k}': (a, 0.0, 0.0) for f in ('index', 'middle', 'ring', 'pinky')
               for k, a in zip((1, 2, 3), (1.2, 1.3, 1.0))}
    return ManoModel().pose_from_anatomical(
        {**fingers, 'thumb1': (0.9, 0.6, 0.0), 'thumb2': (0.6, 0.0, 0.0),
         'thumb3': (0.8, 0.0, 0.0)})


def test_a_mano_fist_closes_the_hand_and_a_flat_hand_opens_it(node):
    cfg = node.config
    closed = node.goal_targets(HandGrasp.Goal(mano_pose=list(fist())))
    flat = node.goal_targets(HandGrasp.Goal(mano_pose=[0.0] * 45))
    assert np.all(closed >= cfg.lower - 1e-9) and np.all(closed <= cfg.upper + 1e-9)
    assert cfg.closure(closed) > 0.5 > cfg.closure(flat)


@pytest.mark.parametrize('goal,match', [
    (HandGrasp.Goal(mano_pose=[0.0] * 44), '45 finite values'),
    (HandGrasp.Goal(mano_pose=[float('nan')] * 45), '45 finite values'),
    (HandGrasp.Goal(mano_pose=[0.0] * 45, named_pose='open'), 'named_pose and mano_pose'),
])
def test_malformed_mano_goals_are_refused_with_the_reason(node, goal, match):
    with pytest.raises(ValueError, match=match):
        node.goal_targets(goal)


def make_node(**params):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    values = dict(hand_config=str(CONFIG_DIR / 'leap_16dof.yaml'),
                  retargeting_config=str(CONFIG_DIR / 'leap_16dof_retargeting.yaml'), **params)
    try:
        return HandDriverNode(context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()]), ctx
    except BaseException:
        ctx.try_shutdown()
        raise


def test_a_mano_model_file_is_used_for_the_retargeting(tmp_path):
    """A synthetic model whose hands_mean is a fist: the zero (mean-relative) pose is a fist."""
    rest = mano.approximate_template('right')
    path = tmp_path / 'mano_right.npz'
    np.savez(path, J_template=rest[:16], tip_template=rest[16:], hands_mean=fist())
    node, ctx = make_node(mano_model_path=str(path))
    try:
        np.testing.assert_array_equal(node.mano_model.hands_mean, fist())
        closed = node.goal_targets(HandGrasp.Goal(mano_pose=[0.0] * 45))
        assert node.config.closure(closed) > 0.5  # the approximation would give a flat hand
        flat = node.goal_targets(HandGrasp.Goal(mano_pose=list(-fist())))
        assert node.config.closure(flat) < 0.5
    finally:
        node.destroy_node()
        ctx.try_shutdown()


def test_a_bad_mano_model_file_stops_the_start(tmp_path):
    missing = tmp_path / 'nope.npz'
    with pytest.raises(ConfigurationError, match=f'mano_model_path: cannot read MANO model '
                                                 f'file {missing}'):
        make_node(mano_model_path=str(missing))
    bad = tmp_path / 'bad.npz'
    np.savez(bad, v_template=np.zeros((778, 3)))
    with pytest.raises(ConfigurationError, match=f'mano_model_path: MANO model file {bad}: '
                                                 'needs J_template'):
        make_node(mano_model_path=str(bad))
