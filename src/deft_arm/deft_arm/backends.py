"""
The arm's backends, chosen by the `backend` parameter: `fake` here, `moveit` in moveit_backend.

The abstract class and MotionError live in deft_arm.arm_backend (re-exported here); the moveit
backend is imported only when chosen (only the robot has moveit_py).
"""

import time
from typing import Callable

from deft_arm.arm_backend import ArmBackend, MotionError
from deft_arm.motion import Pose

__all__ = ['ArmBackend', 'BACKENDS', 'FakeArm', 'MotionError', 'make_backend']


class FakeArm(ArmBackend):
    """
    Honest dry-run arm: no hardware and no kinematics.

    The wrist steps through the interpolated path in real time (one pose per control period), so
    motions take as long as the speed limits say and can be interrupted between steps.
    """

    def __init__(self, home: Pose, sleep: Callable[[float], None] = time.sleep):
        self.pose = home
        self.sleep = sleep

    def current_pose(self) -> Pose:
        """Return where the last step left the wrist."""
        return self.pose

    def move(self, path, rate_hz, should_stop, on_step, linear=False) -> bool:
        """Step through the path at rate_hz (always a straight line: linear changes nothing)."""
        for k, pose in enumerate(path):
            if should_stop():
                return False
            self.sleep(1.0 / rate_hz)
            self.pose = pose
            on_step(k, pose)
        return True


BACKENDS = ('fake', 'moveit')


def make_backend(name: str, home: Pose, **options) -> ArmBackend:
    """Build a backend by name with its options; ValueError naming the choices."""
    if name == 'fake':
        return FakeArm(home, **options)
    if name == 'moveit':  # imported here: only the robot has moveit_py
        from deft_arm.moveit_backend import MoveItArm, MoveItSettings
        return MoveItArm(MoveItSettings(**options))
    raise ValueError(f'unknown arm backend {name!r}; available: {", ".join(BACKENDS)}')
