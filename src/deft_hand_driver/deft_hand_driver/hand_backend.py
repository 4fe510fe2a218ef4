"""
The hand's hardware boundary: the abstract HandBackend.

Every backend module imports this one; the factory (`deft_hand_driver.backends.make_backend`)
imports the backends, so no backend imports the factory back.
"""

from abc import ABC, abstractmethod
from typing import List, Tuple

import numpy as np

from deft_hand_driver.hand_config import HandConfig


class HandBackend(ABC):
    """A hand the driver reads and commands; angles in radians, in the config's joint order."""

    reconnects = 0  # how often the backend re-established a lost connection

    def __init__(self, config: HandConfig):
        self.config = config

    @abstractmethod
    def connect(self) -> None:
        """Open the connection; raise RuntimeError with a reason a person can act on."""

    @abstractmethod
    def read(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (positions rad, velocities rad/s, efforts as a fraction of the current limit)."""

    @abstractmethod
    def write(self, targets: np.ndarray) -> None:
        """Command goal positions (already within the limits)."""

    @abstractmethod
    def set_torque(self, enabled: bool) -> None:
        """Enable or disable holding torque on every joint."""

    def hardware_errors(self) -> List[str]:
        """Return hardware error descriptions (e.g. 'servo 3: overload'); empty when healthy."""
        return []

    def reboot_faulted(self) -> List[int]:
        """Clear hardware errors (reboot the faulted servos), torque back on; return their ids."""
        return []

    def close(self) -> None:
        """Release the hardware (torque off first)."""
