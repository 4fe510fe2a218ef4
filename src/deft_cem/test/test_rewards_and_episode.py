import math

import numpy as np
import pytest

from deft_cem.episode import parse_waypoints, residual, scaled_waypoints
from deft_cem.rewards import OperatorRewardBox


def test_operator_box_accepts_only_the_waiting_episode():
    box = OperatorRewardBox()
    assert box.submit('r', 0, 0.5, False) == (False, 'no episode is waiting for a reward')
    box.expect('run1', 4)
    ok, msg = box.submit('run2', 4, 0.5, False)
    assert not ok and "run 'run2' is not waiting" in msg
    ok, msg = box.submit('run1', 3, 0.5, False)
    assert not ok and 'episode 3 is not waiting' in msg
    ok, msg = box.submit('run1', 4, 1.5, False)
    assert not ok and 'within [0, 1]' in msg
    assert box.poll() is None
    ok, _ = box.submit('run1', -1, 0.75, False)
    assert ok and box.poll().reward == 0.75
    ok, msg = box.submit('run1', 4, 0.1, False)
    assert not ok and 'already has a reward' in msg
    box.close()
    assert box.poll() is None and box.waiting_for is None


def test_discard_ignores_the_reward_value():
    box = OperatorRewardBox()
    box.expect('', -1)
    ok, _ = box.submit('', -1, float('nan'), True)
    verdict = box.poll()
    assert ok and verdict.discard and math.isnan(verdict.reward)


def test_residual_modes():
    std = np.array([0.1, 0.2, 0.0, 1.0])
    rng = np.random.default_rng(0)
    assert not residual('prior', std, rng).any()
    assert not residual('mean', std, rng).any()
    draws = np.array([residual('sample', std, rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.std(axis=0), std, rtol=0.05, atol=1e-12)
    a = residual('sample', std, np.random.default_rng(7))
    b = residual('sample', std, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        residual('policy', std, rng)


def test_waypoints():
    tau = parse_waypoints([0, 0, 0.06, 0.01, 0, 0.12])
    assert tau.shape == (2, 3)
    scaled = scaled_waypoints(tau, 0.5)
    np.testing.assert_allclose(scaled[1], [0.005, 0, 0.06])
    with pytest.raises(ValueError, match='triples'):
        parse_waypoints([0, 0])


def test_demonstration_turns_are_base_axes_turns_of_the_grasp(tmp_path):
    from deft_cem.episode import load_demonstrations, parse_demonstration, waypoint_turn
    from deft_common import rotations

    tau = parse_demonstration([0, 0, 0.1, 0.05, 0, 0.1], [0, 0, 0, 1.2, 0, 0])
    (o0, r0), (o1, r1) = tau.scaled(0.5)
    np.testing.assert_allclose(o1, [0.025, 0, 0.05])
    np.testing.assert_allclose(r1, [0.6, 0, 0])
    assert not r0.any()
    # the arm composes q_grasp * rel: that must equal the base-axes turn R(r) * q_grasp
    grasp = rotations.from_rotvec([0.3, -0.2, 1.0])
    rel = waypoint_turn(grasp, [1.2, 0, 0])
    turned = rotations.multiply(grasp, rel)
    expected = rotations.multiply(rotations.from_rotvec([1.2, 0, 0]), grasp)
    assert rotations.angle_between(turned, expected) < 1e-9
    np.testing.assert_allclose(waypoint_turn(grasp, [0, 0, 0]), [0, 0, 0, 1], atol=1e-12)
    # no turns given: zeros, one per waypoint
    assert parse_demonstration([0, 0, 0.1]).rotations.shape == (1, 3)
    with pytest.raises(ValueError, match='one finite rotation vector'):
        parse_demonstration([0, 0, 0.1, 0, 0, 0.2], [0, 0, 1])
    path = tmp_path / 'demos.yaml'
    path.write_text('Pour It:\n  waypoints: [0, 0, 0.1]\n  rotations: [0, 0.5, 0]\n')
    demos = load_demonstrations(path)
    np.testing.assert_allclose(demos['pour it'].rotations, [[0, 0.5, 0]])
    path.write_text('pour:\n  waypoints: [0, 0]\n')
    with pytest.raises(ValueError, match="task 'pour'.*triples"):
        load_demonstrations(path)
    path.write_text('pour:\n  waypoint: [0, 0, 1]\n')
    with pytest.raises(ValueError, match='needs a mapping with waypoints'):
        load_demonstrations(path)


def test_installed_demonstrations_file_parses():
    from pathlib import Path

    from deft_cem.episode import load_demonstrations

    demos = load_demonstrations(Path(__file__).resolve().parents[1] / 'config' /
                                'demonstrations.yaml')
    assert 'pick up the cup' in demos and demos['pick up the cup'].waypoints[-1][2] > 0.05
