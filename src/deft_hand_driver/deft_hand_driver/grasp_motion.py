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
    """Stalled = every |velocity| below `velocity` for `hold` seconds while short of the goal."""

    velocity: float
    hold: float
    _since: Optional[float] = None

    def update(self, t: float, velocities: np.ndarray) -> bool:
        """Feed a sample; return whether the hand has been still long enough."""
        if np.all(np.abs(velocities) < self.velocity):
            if self._since is None:
                self._since = t
            return t - self._since >= self.hold
        self._since = None
        return False
