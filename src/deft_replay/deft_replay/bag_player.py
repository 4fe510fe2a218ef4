"""
Play recorded bags into a live graph at their recorded timing: the `bag_player` node.

    deft_play_bag --ros-args -r __ns:=/deft -p bags:=<run>/bags -p rate:=2.0

`bags` is an episode bag (rosbag2 directory or .mcap file), a directory of bags or a run
directory (its `bags/`); bags play one after another in name order, each from its first message.
Topics recorded under `recorded_namespace` (the episode node's namespace, /deft by default) are
published relative to this node's namespace, so a graph started in another namespace sees them
under its own names; other topics keep their recorded names. Messages go out as the recorded CDR
bytes, never deserialised. A topic whose type is not installed here, or whose recorded definition
differs from the installed one, is skipped with one warning (bags from other sources play what
they can); a path that does not exist or holds no playable bag stops the node at start with the
reason.

deft_replay.playback reads the bags and uses no rclpy (unit-tested alone); this node only
schedules and publishes.
"""

import time
from typing import Iterator, Optional

from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_params import Param, declare
from deft_replay.bag_format import NAMESPACE
from deft_replay.playback import BagMessage, BagPlan, BagPlayback, BagPlayError

PARAMS = (
    Param('bags', '', 'What to play: an episode bag (rosbag2 directory or .mcap file), a '
          'directory of bags, or a run directory (its bags/).'),
    Param('rate', 1.0, 'Playback speed: 2.0 plays twice as fast as recorded.',
          range=(0.01, 100.0)),
    Param('loop', False, 'Play the bags again from the first one after the last.'),
    # String arrays default to [''], not []: rclpy cannot type an empty list ('' is ignored).
    Param('topics', [''], "Topics to play, recorded or published names ([''] or []: every "
          'topic).'),
    Param('recorded_namespace', NAMESPACE, 'Namespace the bags were recorded in: its topics are '
          "published relative to this node's namespace; other topics keep their recorded "
          'names. Empty: every topic keeps its recorded name.'),
    Param('wait_for_subscribers', [''], 'Topics (published names) that must have a subscriber '
          "before playing starts, e.g. ['camera/color/image_raw'] ([''] or []: none)."),
    Param('start_delay', 1.0, 'Seconds between start-up (and the subscribers above) and the '
          'first message, for subscribers to discover the publishers.', range=(0.0, 3600.0)),
    Param('qos_depth', 10, 'History depth of the publishers (reliable, volatile).',
          range=(1, 10000)),
    Param('exit_when_done', True, 'Exit after the last message (without loop); false: stay up, '
          'idle.'),
)
MIN_DELAY_NS = 100_000  # the timer's shortest re-arm, 0.1 ms
WAIT_POLL_NS = 100_000_000
DRAIN_POLL_NS = 20_000_000
DRAIN_TIMEOUT_NS = 5_000_000_000  # longest wait for subscribers to acknowledge before exiting
PROGRESS_PERIOD = 5.0  # s between progress lines within a bag


class BagPlayerNode(Node):
    """Publishes bags' messages at their recorded timing, scaled by `rate`."""

    def __init__(self, **kwargs):
        super().__init__('bag_player', **kwargs)
        self.p = declare(self, PARAMS)
        if not self.p.bags:
            raise ConfigurationError('parameter bags is empty: give an episode bag, a directory '
                                     'of bags or a run directory')
        try:
            self.playback = BagPlayback([self.p.bags], self.p.topics or [],
                                        self.p.recorded_namespace,
                                        warn=self.get_logger().warning)
        except BagPlayError as exc:
            raise ConfigurationError(f'bags {self.p.bags}: {exc}') from exc
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.p.qos_depth,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.pubs = {}
        for plan in self.playback.plans:
            for track in plan.tracks:
                if track.topic not in self.pubs:
                    self.pubs[track.topic] = self.create_publisher(track.msg_type, track.topic,
                                                                   qos)
        self.waiting = [t for t in self.p.wait_for_subscribers or [] if t]
        unknown = [t for t in self.waiting if t not in self.pubs]
        if unknown:
            self.get_logger().warning(f'wait_for_subscribers: {", ".join(unknown)} not played; '
                                      'not waiting for them')
            self.waiting = [t for t in self.waiting if t in self.pubs]
        self.bag_index = -1
        self.stream: Optional[Iterator[BagMessage]] = None
        self.pending: Optional[BagMessage] = None
        self.origin_ns = 0
        self.published = 0
        self.total_published = 0
        self.started_ns = 0
        self.done = False
        self.drain_deadline = 0
        self.ready_ns: Optional[int] = None  # when the subscribers were there
        total = sum(p.total for p in self.playback.plans)
        self.get_logger().info(
            f'{len(self.playback.plans)} bag(s) from {self.p.bags}: {total} messages on '
            f'{len(self.pubs)} topics at rate {self.p.rate:g}'
            + (', looping' if self.p.loop else '')
            + (f'; waiting for subscribers on {", ".join(self.waiting)}' if self.waiting else ''))
        self.timer = self.create_timer(0.01, self.tick,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))

    def rearm(self, delay_ns: int) -> None:
        """Call tick() again in delay_ns."""
        self.timer.timer_period_ns = max(MIN_DELAY_NS, int(delay_ns))
        self.timer.reset()

    def tick(self) -> None:
        """Publish every message that is due, then sleep until the next one."""
        if self.done:
            return self.drain()
        now = time.monotonic_ns()
        if self.ready_ns is None:
            missing = [t for t in self.waiting if self.pubs[t].get_subscription_count() == 0]
            if missing:
                self.get_logger().info(f'waiting for subscribers on {", ".join(missing)}',
                                       throttle_duration_sec=PROGRESS_PERIOD)
                return self.rearm(WAIT_POLL_NS)
            self.ready_ns = now
        start = self.ready_ns + int(self.p.start_delay * 1e9)
        if now < start:
            return self.rearm(start - now)
        if self.stream is None and not self.next_bag():
            return
        while True:
            due = self.origin_ns + int(self.pending.time_ns / self.p.rate)
            now = time.monotonic_ns()
            if due > now:
                break
            self.pubs[self.pending.topic].publish(self.pending.data)
            self.published += 1
            self.total_published += 1
            self.pending = self.read()
            if self.pending is None:
                self.end_bag()
                if not self.next_bag():
                    return
        self.get_logger().info(
            f'bag {self.bag_index + 1}/{len(self.playback.plans)}: {self.published}/'
            f'{self.plan.total} messages', throttle_duration_sec=PROGRESS_PERIOD)
        self.rearm(due - now)

    @property
    def plan(self) -> BagPlan:
        """Return the plan of the bag playing."""
        return self.playback.plans[self.bag_index]

    def read(self) -> Optional[BagMessage]:
        """Return the bag's next message (None at its end, or when it cannot be read further)."""
        try:
            return next(self.stream)
        except StopIteration:
            return None
        except Exception as exc:  # noqa: B902 - a corrupt or vanished bag ends it, not the node
            self.get_logger().error(f'{self.plan.path}: stopped after {self.published} '
                                    f'messages: {type(exc).__name__}: {exc}')
            return None

    def next_bag(self) -> bool:
        """Start the next bag (from the first when looping); False when playback has ended."""
        if self.started_ns == 0:
            self.started_ns = time.monotonic_ns()
        for _ in range(len(self.playback.plans)):  # bags that turn out unreadable are passed
            self.bag_index += 1
            if self.bag_index >= len(self.playback.plans):
                if not self.p.loop:
                    break
                self.bag_index = 0
            plan = self.plan
            self.get_logger().info(
                f'bag {self.bag_index + 1}/{len(self.playback.plans)} {plan.path}: '
                f'{plan.total} messages, {plan.duration_ns / 1e9:.1f} s recorded')
            self.stream = self.playback.messages(plan)
            self.published = 0
            self.pending = self.read()  # opens the bag: the clock of this bag starts after it
            self.origin_ns = time.monotonic_ns()
            if self.pending is not None:
                return True
            self.end_bag()
        if self.p.loop:
            self.get_logger().error('none of the bags could be read any more; stopping the loop')
        self.finish()
        return False

    def end_bag(self) -> None:
        """Log a bag's end."""
        self.get_logger().info(f'bag {self.bag_index + 1}/{len(self.playback.plans)} done: '
                               f'{self.published}/{self.plan.total} messages published')
        self.stream = None

    def finish(self) -> None:
        """Log the end of playback; exit (once the last messages are delivered), or idle."""
        self.done = True
        elapsed = (time.monotonic_ns() - self.started_ns) / 1e9
        self.get_logger().info(
            f'played {self.total_published} messages from {len(self.playback.plans)} bag(s) '
            f'in {elapsed:.1f} s' + ('; exiting' if self.p.exit_when_done else '; idle'))
        if self.p.exit_when_done:
            self.drain_deadline = time.monotonic_ns() + DRAIN_TIMEOUT_NS
            self.rearm(0)
        else:
            self.timer.cancel()

    def drain(self) -> None:
        """Shut down once reliable subscribers have acknowledged everything (or after a while)."""
        acked = all(pub.wait_for_all_acked(Duration(seconds=0)) for pub in self.pubs.values())
        if not acked and time.monotonic_ns() < self.drain_deadline:
            return self.rearm(DRAIN_POLL_NS)
        if not acked:
            self.get_logger().warning(f'exiting before every subscriber acknowledged the last '
                                      f'messages ({DRAIN_TIMEOUT_NS / 1e9:g} s)')
        self.timer.cancel()
        self.context.try_shutdown()


def main(args=None):
    """Run the bag player."""
    # Callbacks never wait: one thread plays, and answers parameter services between messages.
    raise SystemExit(run_node(BagPlayerNode, args, threads=1, params=PARAMS))


if __name__ == '__main__':
    main()
