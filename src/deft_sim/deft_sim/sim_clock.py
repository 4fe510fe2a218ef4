"""
The simulated clock of the sim node: when it may advance, how fast, and when to render.

The sim node owns sim time. It advances the world in steps of `step` seconds (whole physics
timesteps, the same 2 ms contact timestep as always) and publishes /clock after each; every node
of the sim profile runs on that clock (use_sim_time). Three rules keep it fast and honest:

- **Lockstep with the robot.** The world follows the arm's wrist pose and the hand's joint
  states, each stamped with its sender's (sim) clock. The next step is taken only when every live
  peer has reported a state stamped no more than `max_peer_lag` before the end of that step, so
  a slow peer (a loaded machine) slows the clock down instead of falling behind it: the world
  never follows a robot more than `max_peer_lag` old, and the arm, which moves at most one
  interpolated step per clock update, never jumps through an object. A peer silent for
  `peer_timeout` s of wall time (not started, or dead) is not waited for.
- **Fast while something happens, real time when idle.** While the robot's inputs change (a
  motion, the hand closing) and for `idle_after` s of sim time after the last change (the scene
  settling), the clock runs as fast as the CPU and the lockstep allow (at most
  `max_real_time_factor` times real time when that is above 0). When nothing changed for longer
  (perception thinking, an operator scoring, an idle graph) it runs at real time, so an idle
  graph costs what it always did.
- **Frames when they are needed.** A frame is rendered after a reset (by the node), once when the
  robot comes to rest after moving (`rest_frame_after` s of sim time without a change: the frame
  after a motion), and for viewers at most every 1/camera_rate_hz s of wall time (a repeat of
  the last frame, without rendering, once the world is idle and drawn).

Pure: no rclpy. The node feeds wall time (time.monotonic) and sim time (s) in.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class ClockSettings:
    """How the sim clock advances (sim node parameters of the same names, seconds)."""

    step: float = 0.02             # sim s per step and per /clock message
    max_peer_lag: float = 0.1      # sim s the world may run ahead of a peer's last state
    peer_timeout: float = 0.5      # wall s of silence after which a peer is not waited for
    idle_after: float = 0.5        # sim s without input changes before the clock runs real time
    max_real_time_factor: float = 0.0  # cap of the fast clock (0: as fast as it goes)
    rest_frame_after: float = 0.25  # sim s without input changes before the frame of a rest
    change: float = 1e-3           # input change (m, rad, quaternion units) that counts

    def __post_init__(self):
        if not self.step > 0:
            raise ValueError(f'step must be > 0 s, got {self.step}')
        if not self.max_peer_lag >= self.step:
            raise ValueError(f'max_peer_lag ({self.max_peer_lag} s) must be at least one step '
                             f'({self.step} s)')
        if not (self.peer_timeout > 0 and self.idle_after >= 0 and self.rest_frame_after >= 0
                and self.max_real_time_factor >= 0 and self.change > 0):
            raise ValueError('peer_timeout and change must be > 0; idle_after, '
                             'rest_frame_after and max_real_time_factor >= 0')


@dataclass
class Peers:
    """The newest state stamp (sim s) of each peer and when it came (wall s)."""

    stamps: Dict[str, Tuple[float, float]] = field(default_factory=dict)

    def heard(self, name: str, stamp: float, wall: float) -> None:
        """Note a state of `name` stamped `stamp` (sim s), received at `wall` (wall s)."""
        self.stamps[name] = (stamp, wall)

    def wait(self, end: float, wall: float, s: ClockSettings) -> Tuple[float, Optional[str]]:
        """
        Return (wall s to wait before a step that ends at sim time `end`, the peer waited for).

        (0, None): every live peer is recent enough. Otherwise the wait lasts until the peer
        that lags would count as silent; a new state of it ends the wait earlier (the node
        wakes up on each message).
        """
        worst, name = 0.0, None
        for peer, (stamp, heard) in self.stamps.items():
            silent_in = heard + s.peer_timeout - wall
            if silent_in > 0 and stamp < end - s.max_peer_lag - 1e-9 and silent_in > worst:
                worst, name = silent_in, peer
        return worst, name


class Activity:
    """Whether the robot's inputs change: the clock's speed and the frames of rests."""

    def __init__(self, settings: ClockSettings, now: float = 0.0):
        self.s = settings
        self.inputs: Optional[np.ndarray] = None
        self.changed = now         # sim time of the last change
        self.rest_drawn = True     # the rest after the last change has its frame

    def update(self, inputs: Optional[Sequence[float]], now: float) -> None:
        """
        Compare the inputs (wrist, hand) with those of the last change.

        None (no input since a reset) tells nothing; the first inputs ever are no change.
        """
        if inputs is None:
            return
        values = np.asarray(inputs, dtype=float)
        if self.inputs is None:
            self.inputs = values
            return
        if values.shape != self.inputs.shape or \
                float(np.max(np.abs(values - self.inputs))) > self.s.change:
            self.inputs, self.changed, self.rest_drawn = values, now, False

    def reset(self) -> None:
        """Mark a new scene: the node renders it, so the rest it shows is drawn."""
        self.rest_drawn = True

    def idle(self, now: float) -> bool:
        """Return whether the inputs have not changed for idle_after."""
        return now - self.changed >= self.s.idle_after

    def rest_frame_due(self, now: float) -> bool:
        """Return True once per rest: rest_frame_after after the last change."""
        if self.rest_drawn or now - self.changed < self.s.rest_frame_after:
            return False
        self.rest_drawn = True
        return True


class Pace:
    """Wall time each step may start at: real time when idle, the cap (if any) when fast."""

    def __init__(self):
        self.anchor: Optional[Tuple[float, float, float]] = None  # (sim, wall, factor)

    def wall_due(self, sim: float, wall: float, factor: float) -> float:
        """
        Return the wall time the step starting at sim time `sim` may start (<= wall: now).

        factor 0: unpaced. A change of factor, or a step more than one step late, starts
        the schedule anew from now (an overrun is never made up in a burst).
        """
        if factor <= 0:
            self.anchor = None
            return wall
        if self.anchor is None or self.anchor[2] != factor:
            self.anchor = (sim, wall, factor)
        s0, w0, f = self.anchor
        due = w0 + (sim - s0) / f
        if due < wall - 0.1:  # far behind (a stall): no catching up
            self.anchor = (sim, wall, factor)
            return wall
        return due

    def factor(self, activity: Activity, now: float, s: ClockSettings) -> float:
        """Return the real-time factor of the next step: 1 when idle, else the cap (0: none)."""
        return 1.0 if activity.idle(now) else s.max_real_time_factor
