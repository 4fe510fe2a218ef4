import numpy as np
import pytest

from deft_arm.backends import BACKENDS, ArmBackend, FakeArm, make_backend
from deft_arm.motion import Pose, interpolate

HOME = Pose(np.array([0.35, 0.0, 0.35]), np.array([1.0, 0.0, 0.0, 0.0]))
RATE = 50.0


class Recorder:
    """Stands in for time.sleep and on_step: records instead of waiting."""

    def __init__(self):
        self.slept = []
        self.steps = []

    def sleep(self, seconds):
        self.slept.append(seconds)

    def on_step(self, k, pose):
        self.steps.append((k, pose))


def path_down(distance=0.25, rate=RATE):
    goal = Pose(HOME.position - [0.0, 0.0, distance], HOME.orientation)
    return interpolate(HOME, goal, max_speed=0.25, max_angular_speed=1.5, rate_hz=rate)


def test_fake_arm_starts_at_home():
    assert FakeArm(HOME, sleep=Recorder().sleep).current_pose() is HOME


@pytest.mark.parametrize('rate, steps', [(50.0, 50), (10.0, 10)])
def test_move_steps_through_the_path_one_control_period_each(rate, steps):
    rec = Recorder()
    arm = FakeArm(HOME, sleep=rec.sleep)
    path = path_down(rate=rate)
    assert arm.move(path, rate, lambda: False, rec.on_step) is True
    assert rec.slept == [1.0 / rate] * steps
    assert sum(rec.slept) == pytest.approx(1.0)  # 0.25 m at 0.25 m/s, whatever the rate
    assert [k for k, _ in rec.steps] == list(range(steps))
    assert all(p is q for (_, p), q in zip(rec.steps, path))
    assert arm.current_pose() is path[-1]
    np.testing.assert_allclose(arm.current_pose().position, [0.35, 0.0, 0.10])


def test_stop_request_ends_the_move_between_steps():
    rec = Recorder()
    arm = FakeArm(HOME, sleep=rec.sleep)
    path = path_down()
    assert arm.move(path, RATE, lambda: len(rec.steps) >= 3, rec.on_step) is False
    assert len(rec.steps) == 3 and len(rec.slept) == 3
    assert arm.current_pose() is path[2]
    # the next move starts where the stopped one left the wrist
    assert arm.move(path[3:], RATE, lambda: False, rec.on_step) is True
    assert arm.current_pose() is path[-1]
    assert len(rec.slept) == 50


def test_stop_before_the_first_step_leaves_the_arm_at_home():
    rec = Recorder()
    arm = FakeArm(HOME, sleep=rec.sleep)
    assert arm.move(path_down(), RATE, lambda: True, rec.on_step) is False
    assert (rec.slept, rec.steps) == ([], [])
    assert arm.current_pose() is HOME


def test_empty_path_is_an_immediate_success():
    rec = Recorder()
    arm = FakeArm(HOME, sleep=rec.sleep)
    assert arm.move([], RATE, lambda: False, rec.on_step) is True
    assert (rec.slept, arm.current_pose()) == ([], HOME)


def test_make_backend():
    arm = make_backend('fake', HOME)
    assert isinstance(arm, FakeArm) and isinstance(arm, ArmBackend)
    assert arm.current_pose() is HOME
    arm.close()
    with pytest.raises(ValueError, match="unknown arm backend 'ur5'; available: fake"):
        make_backend('ur5', HOME)
    assert BACKENDS == ('fake', 'moveit')
