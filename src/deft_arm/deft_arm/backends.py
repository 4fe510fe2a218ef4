"""The arm's hardware boundary: one abstract class, chosen by the `backend` parameter."""

from abc import ABC, abstractmethod
import time
from typing import Callable, List, Optional, Sequence, Tuple

from deft_arm.motion import Pose


class MotionError(RuntimeError):
    """A motion could not be planned or executed; the message says which and why."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class ArmBackend(ABC):
    """An arm that moves its wrist through Cartesian poses."""

    @abstractmethod
    def current_pose(self) -> Pose:
        """Return the wrist pose now."""

    @abstractmethod
    def move(self, path: List[Pose], rate_hz: float, should_stop: Callable[[], bool],
             on_step: Callable[[int, Pose], None], linear: bool = False) -> bool:
        """
        Follow the path; return False if should_stop() ended it early.

        linear asks for a straight wrist line to the path's end (the approach along the palm's
        axis, the retreat); raise MotionError when the motion cannot be planned or executed.
        """

    def check_reachable(self, poses: Sequence[Tuple[str, Pose]]) -> Optional[str]:
        """Return why one of the named poses cannot be reached, or None; moves nothing."""
        return None

    def close(self) -> None:
        """Release the hardware."""


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
