"""
Time for a node's own threads: the wall clock, or the simulated clock when the node uses sim time.

A node started with `use_sim_time: true` (the sim profile) reads ROS time from `/clock`, which
the sim node publishes while it steps the physics, often many times faster than real time. Its
executor timers follow that clock by themselves; threads that pace themselves (the hand's control
loop, the simulated arm's motion steps) use a NodeClock instead of `time.monotonic`/`time.sleep`:

- `now()` is seconds on the node's clock: `time.monotonic()` without sim time (unchanged timing
  on the robot), ROS time (`/clock`) with it;
- `wait_until(t)` / `sleep(s)` wait on that clock; with sim time they wake on each `/clock`
  update (a jump callback), and give up after `max_wall` seconds of wall time (the caller checks
  its cancel or stop condition, then waits again) so a clock that stopped (the sim node died)
  never hangs a thread that must answer a cancel. A clock that jumps back (a restarted sim node
  starts its clock anew) ends every wait at once: waiting for the old time would take as long as
  the jump.
- Before its first `/clock` message a sim-time clock reads 0 (`started()` is False): a node may
  be asked to act before its /clock subscription has matched the sim node's publisher (a grasp
  goal right after start-up). `sleep(s)` then starts counting when the clock starts, and a
  duration measured from a time read before the start is measured from the start instead
  (`since`).

Waits that protect against a dead peer (service and goal deadlines) stay on the wall clock:
`deft_common.ros_async` runs them on `time.monotonic`.
"""

import threading
import time
from typing import Optional, Tuple

from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.node import Node


def uses_sim_time(node: Node) -> bool:
    """Return whether the node takes its time from /clock (parameter use_sim_time)."""
    return bool(node.get_parameter('use_sim_time').value)


class NodeClock:
    """The clock a node's own threads pace themselves by (see the module docstring)."""

    def __init__(self, node: Node):
        self.sim = uses_sim_time(node)
        self._clock = node.get_clock()
        self._changed = threading.Condition()
        self._epoch = 0  # counts backward jumps
        self._jumps = None
        if self.sim:  # wake the waiters on every forward or backward update of /clock
            self._jumps = self._clock.create_jump_callback(
                JumpThreshold(min_forward=Duration(nanoseconds=1),
                              min_backward=Duration(nanoseconds=-1), on_clock_change=True),
                post_callback=self._notify)

    def _notify(self, jump=None) -> None:
        with self._changed:
            if jump is not None and jump.delta.nanoseconds < 0:
                self._epoch += 1
            self._changed.notify_all()

    def now(self) -> float:
        """Return seconds on this clock (monotonic wall time, or ROS time on sim time)."""
        if not self.sim:
            return time.monotonic()
        return self._clock.now().nanoseconds * 1e-9

    def started(self) -> bool:
        """Return whether the clock runs: always on wall time; on sim time once /clock came."""
        return not self.sim or self._clock.now().nanoseconds > 0

    def since(self, t0: float) -> Tuple[float, float]:
        """
        Return (t0, seconds since t0), t0 moved to now when the clock went back or started.

        A t0 read before the sim clock started (0) or before it jumped back (a restarted sim
        node) would make the duration the whole epoch or negative: it restarts from now.
        """
        now = self.now()
        if now < t0 or (t0 <= 0.0 < now and self.sim):
            return now, 0.0
        return t0, now - t0

    def wait_until(self, t: float, stop: Optional[threading.Event] = None,
                   max_wall: float = 0.1) -> bool:
        """
        Wait until now() >= t; return whether it is.

        Returns False early when `stop` is set, and (sim time only) after `max_wall` s of wall
        time without reaching t: callers loop, checking their own stop conditions in between.
        True at once when the clock jumps back meanwhile (callers take the new time as now).
        """
        if not self.sim:
            left = t - time.monotonic()
            if left > 0:
                if stop is not None:
                    return not stop.wait(left) and time.monotonic() >= t
                time.sleep(left)
            return True
        give_up = time.monotonic() + max_wall
        with self._changed:
            epoch = self._epoch
            while self.now() < t and self._epoch == epoch:
                if stop is not None and stop.is_set():
                    return False
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
        return True

    def sleep(self, seconds: float, stop: Optional[threading.Event] = None) -> bool:
        """
        Sleep `seconds` on this clock; False if `stop` was set first.

        On sim time a clock that does not advance (the sim node gone) is waited for as long as
        it takes, checking `stop` every 0.1 s of wall time.
        """
        while not self.started():  # sim time before the first /clock: count from the start
            if not self.wait_until(1e-9, stop) and stop is not None and stop.is_set():
                return False
        t = self.now() + seconds
        while not self.wait_until(t, stop):
            if stop is not None and stop.is_set():
                return False
            t = min(t, self.now() + seconds)  # the clock went back while nobody waited
        return True

    def close(self) -> None:
        """Unregister the jump callback (safe to call twice)."""
        if self._jumps is not None:
            jumps, self._jumps = self._jumps, None
            jumps.unregister()
        self._notify()


class WallRate:
    """
    At most `rate_hz` events per second of wall time (0: every event): feedback meant for people.

    On sim time a motion step can come many times faster than anyone reads its feedback; the
    first event always passes, and `due(force=True)` (a stage's first or last step) too.
    """

    def __init__(self, rate_hz: float):
        if rate_hz < 0:
            raise ValueError(f'rate_hz must be >= 0, got {rate_hz}')
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.last: Optional[float] = None

    def due(self, force: bool = False) -> bool:
        """Return whether an event may pass now (and count it if so)."""
        now = time.monotonic()
        if force or self.last is None or now - self.last >= self.period:
            self.last = now
            return True
        return False
