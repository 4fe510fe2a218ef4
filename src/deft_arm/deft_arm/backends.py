"""
The arm's backends, chosen by the `backend` parameter: `fake` here, `moveit` in moveit_backend.

The abstract class and MotionError live in deft_arm.arm_backend (re-exported here); the moveit
backend is imported only when chosen (only the robot has moveit_py).
"""

import time
from typing import Callable, Optional

from deft_arm.arm_backend import ArmBackend, MotionError
from deft_arm.motion import Pose

__all__ = ['ArmBackend', 'BACKENDS', 'FakeArm', 'MotionError', 'make_backend']


class FakeArm(ArmBackend):
    """
    Honest dry-run arm: no hardware and no kinematics.

    The wrist steps through the interpolated path on its clock (one pose per control period), so
    motions take as long as the speed limits say and can be interrupted between steps. The clock
    is the wall clock, or the node's simulated clock in the sim profile: `wait_until(t)` of a
    deft_common NodeClock, which may return False early (the caller checks for a stop, then waits
    again). A step that comes late is never skipped: a slow process moves the arm more slowly,
    it never makes it jump. `at_once` (the sim profile) puts the wrist home in one step.
    """

    def __init__(self, home: Pose, sleep: Callable[[float], None] = time.sleep,
                 clock=None, at_once: bool = False):
        self.pose = home
        self.home = home
        self.sleep = sleep
        self.clock = clock  # None: sleep 1/rate between steps
        self.at_once = at_once

    def current_pose(self) -> Pose:
        """Return where the last step left the wrist."""
        return self.pose

    def _wait(self, seconds: float, should_stop) -> bool:
        """Wait one control period; False if stopped meanwhile."""
        if self.clock is None:
            self.sleep(seconds)
            return True
        while not self.clock.started():  # sim time before the first /clock
            if should_stop():
                return False
            self.clock.wait_until(1e-9)
        t = self.clock.now() + seconds
        while not self.clock.wait_until(t):
            if should_stop():
                return False
            t = min(t, self.clock.now() + seconds)  # the clock went back (a restarted sim)
        return True

    def move(self, path, rate_hz, should_stop, on_step, linear=False) -> bool:
        """Step through the path at rate_hz (always a straight line: linear changes nothing)."""
        for k, pose in enumerate(path):
            if should_stop() or not self._wait(1.0 / rate_hz, should_stop):
                return False
            self.pose = pose
            on_step(k, pose)
        return True

    def go_home(self, on_step=lambda k, p: None) -> Optional[bool]:
        """at_once: put the wrist home in one step and return True; else None (move there)."""
        if not self.at_once:
            return None
        self.pose = self.home
        on_step(0, self.pose)
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
