"""Pure pieces of a hand grasp: the setpoint ramp and the end conditions."""

from dataclasses import dataclass
from typing import Optional

import numpy as np


def ramp(start: np.ndarray, goal: np.ndarray, elapsed: float, duration: float) -> np.ndarray:
    """Linear setpoint from start (t = 0) to goal (t = duration)."""
    s = 1.0 if duration <= 0 else min(1.0, max(0.0, elapsed / duration))
    return start + s * (goal - start)


@dataclass
class StallDetector:
    """
    Stalled = every |velocity| below `velocity` for `hold` seconds while short of the goal.

    With `effort` > 0 the joints short of their targets must also push: |effort| (a fraction of
    the current limit) at least `effort` on each of them, so a hand that stops without pushing
    (torque lost, a servo that let go) is not taken for a hand closed on an object.
    """

    velocity: float
    hold: float
    effort: float = 0.0
    _since: Optional[float] = None

    def update(self, t: float, velocities: np.ndarray, efforts: Optional[np.ndarray] = None,
               short: Optional[np.ndarray] = None) -> bool:
        """
        Feed a sample; return whether the hand has been still (and pushing) long enough.

        `efforts` and `short` (a mask of the joints short of their targets) are needed when
        `effort` > 0; without them no sample counts as pushing.
        """
        still = bool(np.all(np.abs(velocities) < self.velocity))
        if still and self.effort > 0:
            if efforts is None or short is None:
                still = False
            else:
                pushing = np.abs(np.asarray(efforts, dtype=float)) >= self.effort
                mask = np.asarray(short, dtype=bool)
                still = bool(np.any(mask) and np.all(pushing[mask]))
        if still:
            if self._since is None:
                self._since = t
            return t - self._since >= self.hold
        self._since = None
        return False
