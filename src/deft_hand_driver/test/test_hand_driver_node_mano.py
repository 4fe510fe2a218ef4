"""hand/grasp goals with a MANO pose: retargeted by name onto the hand, checked like the others."""

from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

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
