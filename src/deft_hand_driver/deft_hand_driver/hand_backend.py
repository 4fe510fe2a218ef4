"""
The hand's hardware boundary: the abstract HandBackend.

Every backend module imports this one; the factory (`deft_hand_driver.backends.make_backend`)
imports the backends, so no backend imports the factory back. `BusFault` is the error a backend
raises when the link to the hand fails (as opposed to a servo's own hardware error).
"""

from abc import ABC, abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_hand_driver.hand_config import HandConfig


class BusFault(RuntimeError):
    """
    The link to the hand failed: a `kind`, the servo ids concerned and a message to act on.

    Kinds: NO_ANSWER (a timeout with not one byte back, even late), CORRUPT (a reply with a bad
    CRC or cut short), LATE (the reply came, after the timeout), PORT_GONE (the serial port failed
    or vanished, or could not be opened). `key` is what repeats of one fault share: no counts, no
    countdowns, so a caller logs one line per change of key.
    """

    NO_ANSWER = 'no answer'
    CORRUPT = 'corrupt replies'
    LATE = 'late replies'
    PORT_GONE = 'port gone'
    OTHER = 'bus error'

    def __init__(self, message: str, kind: str, ids: Sequence[int] = (),
                 key: Optional[str] = None):
        super().__init__(message)
        self.kind, self.ids = kind, tuple(ids)
        # which servos stay silent is part of the fault; which ones a noisy line garbles is not
        self.key = key or (f'{kind} {list(self.ids)}' if kind == self.NO_ANSWER else kind)


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

    def bus_faults(self) -> Dict[str, int]:
        """Return how many bus transactions failed, by BusFault kind, since the start."""
        return {}

    def reboot_faulted(self) -> List[int]:
        """Clear hardware errors (reboot the faulted servos), torque back on; return their ids."""
        return []

    def close(self) -> None:
        """Release the hardware (torque off first)."""
