"""
Episode bags as a playback plan: which recorded topics play, under which names, at which times.

BagPlayback reads bags with rosbags and uses no rclpy (unit-tested alone); the `bag_player` node
(deft_replay.bag_player) only schedules and publishes what it yields. Messages keep their
recorded CDR bytes, never deserialised. A topic whose type is not installed here, or whose
recorded definition differs from the installed one, is skipped with one warning.
"""

from dataclasses import dataclass, field
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from rosbags.rosbag2 import Reader

from deft_replay.bag_format import NAMESPACE
from deft_replay.replay_cli import InputError, find_bags

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
