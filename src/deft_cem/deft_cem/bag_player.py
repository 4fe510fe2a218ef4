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

BagPlayback, the first part of this module, reads bags and uses no rclpy (unit-tested alone); the
node below it only schedules and publishes.
"""

from dataclasses import dataclass, field
import importlib
import json
import logging
import os
from pathlib import Path
import time
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from deft_cem.episode_bag import NAMESPACE
from deft_cem.replay_cli import InputError, find_bags
from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_params import Param, declare

LOG = logging.getLogger(__name__)


class BagPlayError(ValueError):
    """Nothing can be played from the given paths; the message says why."""


class BagMessage(NamedTuple):
    """One message to publish."""

    time_ns: int  # since the first played message of its bag (of the playback, in iter())
    topic: str  # the name to publish on (relative: under the player's namespace)
    msg_type: type  # the rclpy message class
    data: bytes  # the recorded serialised (CDR) message


@dataclass(frozen=True)
class Track:
    """One recorded topic that plays."""

    recorded: str  # topic name in the bag
    topic: str  # name it is published on
    type_name: str  # e.g. sensor_msgs/msg/Image
    msg_type: type
    count: int  # messages, from the bag's metadata


@dataclass
class BagPlan:
    """What one bag plays."""

    path: Path
    tracks: List[Track] = field(default_factory=list)
    duration_ns: int = 0  # recorded span of the bag, all topics (for the log)

    @property
    def total(self) -> int:
        """Return how many messages the bag plays."""
        return sum(t.count for t in self.tracks)


def import_message(type_name: str) -> type:
    """Return the installed message class of 'pkg/msg/Type'; LookupError saying why not."""
    parts = type_name.split('/')
    if len(parts) == 2:  # 'pkg/Type', as some tools write it
        parts.insert(1, 'msg')
    if len(parts) != 3 or not all(parts):
        raise LookupError(f'{type_name!r} is not a pkg/msg/Type name')
    package, kind, name = parts
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError:
        raise LookupError(f'package {package} ({kind}) is not installed') from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type) or not hasattr(type(cls), '_TYPE_SUPPORT') \
            or not hasattr(cls, 'get_fields_and_field_types'):
        raise LookupError(f'{package}.{kind} has no message {name}')
    return cls


def installed_type_hash(type_name: str) -> Optional[str]:
    """Return the RIHS01 hash rosidl computed for an installed type (None: unknown here)."""
    package, _, name = type_name.partition('/')
    kind, _, name = name.rpartition('/')
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in prefixes:
        path = Path(prefix) / 'share' / package / (kind or 'msg') / f'{name}.json'
        if path.is_file():
            try:
                return json.loads(path.read_text())['type_hashes'][0]['hash_string']
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                return None
    return None


def playback_topic(recorded: str, namespace: str) -> str:
    """Return the name to publish a recorded topic on: relative when under `namespace`."""
    namespace = namespace.strip('/')
    name = recorded.lstrip('/')
    if namespace and name.startswith(namespace + '/'):
        return name[len(namespace) + 1:]
    return recorded  # absolute stays absolute; a relative recorded name stays relative


def _ns(value: int) -> int:
    return int(value or 0)


class BagPlayback:
    """
    The messages of some bags in playback order, skipping what cannot be published here.

    `topics`: recorded or playback names to play (empty: all). `warn` receives each reason a
    topic or bag is skipped, once per topic and type over all bags. `resolve` and `type_hash`
    (tests) find a type's message class and installed RIHS01 hash.
    BagPlayError when a path does not exist or no bag holds anything to play.
    """

    def __init__(self, paths: Sequence[os.PathLike], topics: Sequence[str] = (),
                 recorded_namespace: str = NAMESPACE,
                 warn: Callable[[str], None] = LOG.warning,
                 resolve: Callable[[str], type] = import_message,
                 type_hash: Callable[[str], Optional[str]] = installed_type_hash):
        self.topics = [t for t in topics if t]
        self.namespace = recorded_namespace
        self.warn = warn
        self.resolve = resolve
        self.type_hash = type_hash
        self.skipped: List[str] = []
        self._warned: set = set()
        self._types: Dict[str, str] = {}  # playback topic -> its type over all bags
        try:
            bags = find_bags([Path(p).expanduser() for p in paths])
        except InputError as exc:
            raise BagPlayError(str(exc)) from exc
        if not bags:
            raise BagPlayError(f'no bags in {", ".join(str(p) for p in paths)} (a bag is a '
                               'rosbag2 directory with metadata.yaml, or an .mcap file)')
        self.plans: List[BagPlan] = []
        reasons = []
        for path in bags:
            try:
                plan = self._plan(path)
            except BagPlayError as exc:
                self._skip(str(path), f'skipping a bag: {exc}')
                reasons.append(str(exc))
                continue
            if plan.total:
                self.plans.append(plan)
            else:
                reason = f'{path}: no topic to play'
                self._skip(str(path), f'skipping a bag: {reason}')
                reasons.append(reason)
        if not self.plans:
            raise BagPlayError('nothing to play: ' + '; '.join(reasons or ['no bags']))
        played = {n for p in self.plans for t in p.tracks for n in (t.recorded, t.topic)}
        absent = [t for t in self.topics if t not in played]
        if absent:
            self._skip('topics', f'topics {", ".join(absent)} are in none of the bags')

    def _skip(self, key: object, reason: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.skipped.append(reason)
            self.warn(reason)

    def _open(self, path: Path) -> Reader:
        try:
            reader = Reader(path)
            reader.open()
        except Exception as exc:  # noqa: B902 - rosbags raises ReaderError, OSError, YAML errors
            raise BagPlayError(f'{path} is not a readable rosbag2: {exc}') from exc
        return reader

    def _plan(self, path: Path) -> BagPlan:
        reader = self._open(path)
        try:
            plan = BagPlan(path, duration_ns=max(0, _ns(reader.end_time) -
                                                 _ns(reader.start_time)))
            tracks: Dict[Tuple[str, str], Track] = {}
            for conn in reader.connections:
                key = (conn.topic, conn.msgtype)
                if key in tracks:  # the same topic and type twice (another QoS): one track
                    track = tracks[key]
                    tracks[key] = Track(track.recorded, track.topic, track.type_name,
                                        track.msg_type, track.count + _ns(conn.msgcount))
                    continue
                msg_type = self._accept(conn)
                if msg_type is not None:
                    tracks[key] = Track(conn.topic, playback_topic(conn.topic, self.namespace),
                                        conn.msgtype, msg_type, _ns(conn.msgcount))
            plan.tracks = list(tracks.values())
        finally:
            reader.close()
        return plan

    def _accept(self, conn) -> Optional[type]:
        """Return the message class a connection plays with (None: skipped, warned once)."""
        topic, type_name = conn.topic, conn.msgtype
        published = playback_topic(topic, self.namespace)
        if self.topics and topic not in self.topics and published not in self.topics:
            return None
        key = (topic, type_name)
        fmt = getattr(conn.ext, 'serialization_format', 'cdr') or 'cdr'
        if fmt != 'cdr':
            self._skip(key, f'skipping topic {topic} ({type_name}): serialised as {fmt}, not cdr')
            return None
        try:
            msg_type = self.resolve(type_name)
        except LookupError as exc:
            self._skip(key, f'skipping topic {topic}: its type {type_name} is not installed '
                       f'here ({exc})')
            return None
        digest = str(conn.digest or '')
        installed = self.type_hash(type_name) if digest.startswith('RIHS01_') else None
        if installed and digest != installed:
            self._skip(key, f'skipping topic {topic}: its {type_name} definition differs from '
                       f'the installed one (hash {digest}, installed {installed})')
            return None
        known = self._types.setdefault(published, type_name)
        if known != type_name:
            self._skip(key, f'skipping topic {topic} ({type_name}): {published} already plays '
                       f'{known}')
            return None
        return msg_type

    def messages(self, plan: BagPlan) -> Iterator[BagMessage]:
        """Yield a bag's messages that play, timed from its first (BagPlayError: unreadable)."""
        by_key = {(t.recorded, t.type_name): t for t in plan.tracks}
        reader = self._open(plan.path)
        try:
            connections = [c for c in reader.connections if (c.topic, c.msgtype) in by_key]
            start = None
            for conn, stamp, raw in reader.messages(connections=connections):
                start = stamp if start is None else start
                track = by_key[(conn.topic, conn.msgtype)]
                yield BagMessage(stamp - start, track.topic, track.msg_type, bytes(raw))
        finally:
            reader.close()

    def __iter__(self) -> Iterator[BagMessage]:
        """Yield every bag's messages, each bag starting where the previous one ended."""
        offset = 0
        for plan in self.plans:
            last = 0
            for msg in self.messages(plan):
                last = msg.time_ns
                yield msg._replace(time_ns=offset + msg.time_ns)
            offset += last


# --- the node ------------------------------------------------------------------------------


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
    raise SystemExit(run_node(BagPlayerNode, args, threads=1))


if __name__ == '__main__':
    main()
