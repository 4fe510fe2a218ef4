"""
The hand's backends, chosen by the `backend` parameter: `fake` here, `dynamixel` in dynamixel_bus.

The abstract class lives in deft_hand_driver.hand_backend (re-exported here); the dynamixel
backend is imported only when chosen (only the real hand needs dynamixel-sdk).
"""

import math
import time
from typing import Callable

import numpy as np

from deft_hand_driver.hand_backend import HandBackend
from deft_hand_driver.hand_config import HandConfig

__all__ = ['BACKEND_HELP', 'BACKENDS', 'FakeHand', 'HandBackend', 'make_backend']


class FakeHand(HandBackend):
    """
    Honest dry-run hand: no hardware.

    Each joint follows its target with a first-order lag
    (time constant `time_constant`), integrated against `clock`. With `stall_closure` in (0, 1]
    the fingers stop at that closure, as on an object, so stall handling can be exercised: a
    joint held there by the object reports full effort (1, signed) as a servo at its current
    limit would; the efforts are 0 otherwise.
    """

    def __init__(self, config: HandConfig, time_constant: float = 0.08,
                 stall_closure: float = 0.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(config)
        if time_constant <= 0:
            raise ValueError('time_constant must be > 0')
        self.tau, self.stall_closure, self.clock = time_constant, stall_closure, clock
        self.pos = config.pose('open')
        self.vel = np.zeros(config.size)
        self.eff = np.zeros(config.size)
        self.target = self.pos.copy()
        self.torque = False
        self._t = clock()

    def connect(self) -> None:
        """Nothing to open."""
        self._t = self.clock()

    def _step(self) -> None:
        now = self.clock()
        dt = max(0.0, now - self._t)
        self._t = now
        if not self.torque or dt == 0.0:
            self.vel[:] = 0.0
            if not self.torque:
                self.eff[:] = 0.0
            return
        old = self.pos.copy()
        self.pos = self.target + (self.pos - self.target) * math.exp(-dt / self.tau)
        if self.stall_closure > 0:
            open_, closed = self.config.pose('open'), self.config.pose('closed')
            limit = open_ + self.stall_closure * (closed - open_)
            span = closed - open_
            past = np.sign(span) * (self.pos - limit) > 0
            self.pos[past] = limit[past]
            pushing = past | ((np.abs(self.pos - limit) < 1e-12)
                              & (np.sign(span) * (self.target - limit) > 0))
            self.eff = np.where(pushing, np.sign(span), 0.0)
        self.vel = (self.pos - old) / dt

    def read(self):
        """Advance the lag to now and return the state."""
        self._step()
        return self.pos.copy(), self.vel.copy(), self.eff.copy()

    def write(self, targets: np.ndarray) -> None:
        """Set the targets the joints lag towards."""
        self._step()
        self.target = np.asarray(targets, dtype=float).copy()

    def set_torque(self, enabled: bool) -> None:
        """Torque off: joints stay where they are."""
        self._step()
        self.torque = enabled


BACKENDS = ('fake', 'dynamixel')
BACKEND_HELP = ('fake = an honest dry run with no hardware: each joint follows its target with a '
                'first-order lag (time_constant) and may stop on an imaginary object '
                '(stall_closure); dynamixel = the real hand, Dynamixel X-series servos on one '
                'serial bus (port, baud, hand_config servo ids and calibration).')


def make_backend(name: str, config: HandConfig, **options) -> HandBackend:
    """Build a backend by name; ValueError naming the choices."""
    if name == 'fake':
        return FakeHand(config, **options)
    if name == 'dynamixel':  # imported here: only the real hand needs dynamixel-sdk
        from deft_hand_driver.dynamixel_bus import DynamixelHand
        return DynamixelHand(config, **options)
    raise ValueError(f'unknown hand backend {name!r}; available: {", ".join(BACKENDS)}')
