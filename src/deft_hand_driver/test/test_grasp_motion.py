from pathlib import Path

import numpy as np
import pytest

from deft_hand_driver.backends import FakeHand
from deft_hand_driver.grasp_motion import StallDetector, ramp
from deft_hand_driver.hand_config import load_hand_config

START = np.array([0.0, 1.0, -0.5])
GOAL = np.array([1.0, 0.0, 0.5])


@pytest.mark.parametrize('elapsed, expected', [
    (0.0, START), (0.5, [0.25, 0.75, -0.25]), (1.0, [0.5, 0.5, 0.0]), (2.0, GOAL),
    (3.0, GOAL), (-1.0, START)])
def test_ramp_is_linear_in_time_and_stays_at_the_ends(elapsed, expected):
    np.testing.assert_allclose(ramp(START, GOAL, elapsed, 2.0), expected)


def test_ramp_with_no_duration_jumps_to_the_goal():
    np.testing.assert_array_equal(ramp(START, GOAL, 0.0, 0.0), GOAL)
    np.testing.assert_array_equal(ramp(START, GOAL, 0.0, -1.0), GOAL)


def test_ramp_does_not_modify_its_inputs():
    start = START.copy()
    ramp(start, GOAL, 1.0, 2.0)
    np.testing.assert_array_equal(start, START)


def test_stall_needs_every_joint_still_for_the_hold_time():
    stall = StallDetector(velocity=0.02, hold=0.3)
    still, moving = np.array([0.01, -0.019, 0.0]), np.array([0.01, 0.05, 0.0])
    assert not stall.update(0.0, still)
    assert not stall.update(0.2, still)
    assert stall.update(0.3, still)
    assert stall.update(0.5, still)
    # one joint moving again restarts the hold
    assert not stall.update(0.6, moving)
    assert not stall.update(0.7, still)
    assert not stall.update(0.9, still)
    assert stall.update(1.0, still)


def test_stall_threshold_is_strict_and_uses_magnitudes():
    stall = StallDetector(velocity=0.02, hold=0.0)
    assert not stall.update(0.0, np.array([0.02]))
    assert not stall.update(0.1, np.array([-0.03]))
    assert stall.update(0.2, np.array([-0.019]))


def test_fake_hand_stall_is_detected_by_the_stall_detector():
    """The pieces the driver combines: ramp the setpoint into an object, detect the stall."""
    hand = load_hand_config(str(Path(__file__).resolve().parents[1] / 'config' /
                                 'leap_16dof.yaml'))
    t = [0.0]
    fake = FakeHand(hand, time_constant=0.08, stall_closure=0.5, clock=lambda: t[0])
    fake.set_torque(True)
    start, goal = hand.pose('open'), hand.pose('closed')
    stall = StallDetector(velocity=0.02, hold=0.3)
    stalled_at = None
    for k in range(1, 200):
        t[0] = k * 0.02
        pos, vel, _ = fake.read()
        fake.write(ramp(start, goal, t[0], 1.0))
        if t[0] >= 1.0 and stall.update(t[0], vel):
            stalled_at = t[0]
            break
    assert stalled_at is not None
    assert hand.closure(pos) == pytest.approx(0.5)
    assert np.max(np.abs(goal - pos)) > 0.05  # short of the targets: a stall, not an arrival


def test_stall_with_an_effort_threshold_needs_the_short_joints_to_push():
    stall = StallDetector(velocity=0.02, hold=0.0, effort=0.5)
    still = np.zeros(3)
    short = np.array([True, False, True])
    assert not stall.update(0.0, still)  # no efforts given: never a contact
    # joint 2 is short of its target but does not push (e.g. it lost its torque)
    assert not stall.update(0.1, still, np.array([0.9, 0.0, 0.1]), short)
    # pushing on every short joint (either sign); the joint at its target may rest
    assert stall.update(0.2, still, np.array([-0.9, 0.0, 0.5]), short)
    assert not stall.update(0.3, still, np.array([0.9, 0.0, 0.9]), np.zeros(3, bool))
    assert not stall.update(0.4, np.array([0.0, 0.05, 0.0]), np.ones(3), short)
