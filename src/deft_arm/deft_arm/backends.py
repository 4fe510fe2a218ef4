"""The arm's hardware boundary: one abstract class, chosen by the `backend` parameter."""

from abc import ABC, abstractmethod
import time
from typing import Callable, List

from deft_arm.motion import Pose


class ArmBackend(ABC):
    """An arm that moves its wrist through Cartesian poses."""

    @abstractmethod
    def current_pose(self) -> Pose:
        """Return the wrist pose now."""

    @abstractmethod
    def move(self, path: List[Pose], rate_hz: float, should_stop: Callable[[], bool],
             on_step: Callable[[int, Pose], None]) -> bool:
        """Follow the path; return False if should_stop() ended it early."""

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

    def move(self, path, rate_hz, should_stop, on_step) -> bool:
        """Step through the path at rate_hz."""
        for k, pose in enumerate(path):
            if should_stop():
                return False
            self.sleep(1.0 / rate_hz)
            self.pose = pose
            on_step(k, pose)
        return True


BACKENDS = ('fake',)


def make_backend(name: str, home: Pose) -> ArmBackend:
    """Build a backend by name; ValueError naming the choices."""
    if name == 'fake':
        return FakeArm(home)
    raise ValueError(f'unknown arm backend {name!r}; available: {", ".join(BACKENDS)}')
