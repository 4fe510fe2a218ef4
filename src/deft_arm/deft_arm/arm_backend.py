"""
The arm's hardware boundary: the abstract ArmBackend and the MotionError it raises.

Every backend module imports this one; the factory (`deft_arm.backends.make_backend`) imports
the backends, so no backend imports the factory back.
"""

from abc import ABC, abstractmethod
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

    def go_home(self, on_step: Callable[[int, Pose], None]) -> Optional[bool]:
        """Put the wrist home at once if this backend can (True); None: move there instead."""
        return None

    def check_reachable(self, poses: Sequence[Tuple[str, Pose]]) -> Optional[str]:
        """Return why one of the named poses cannot be reached, or None; moves nothing."""
        return None

    def close(self) -> None:
        """Release the hardware."""
