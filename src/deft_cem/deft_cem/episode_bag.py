"""
One rosbag2 (MCAP) per episode: what the camera saw, what the hand did, the prior, xi, eps, reward.

    <bag>/                      a standard rosbag2 directory (`ros2 bag info`, Foxglove, rosbags)
        metadata.yaml           version 9, storage mcap, custom_data = the episode metadata
        <bag>.mcap              messages, with the .msg text of every type as MCAP schemas

Topics, named as on the live graph (namespace `/deft` by default):

    camera/color/image_raw    sensor_msgs/Image, the initial frame I0 then the final frame
    camera/depth/image_raw    sensor_msgs/Image, depth of those frames (when recorded)
    camera/color/camera_info  sensor_msgs/CameraInfo, one per colour frame, same stamp
    hand/joint_states         sensor_msgs/JointState, as many as the node kept
    affordance/prior          deft_interfaces/GraspPrior, the prior f(object, task)
    episodes                  deft_interfaces/EpisodeRecord: xi, eps, reward, ...
    episode/metadata          std_msgs/String, the metadata as one JSON object

Messages are logged at their header stamps. The deft_interfaces types are registered from the
interface package's own .msg files (`$AMENT_PREFIX_PATH/share/deft_interfaces/msg`, else the
source tree), so the type hashes in the bag are those rosidl computes. A bag appears under its
name only once complete: it is written into a hidden temporary directory next to it, synced and
renamed. This module imports no rclpy: it runs where only `rosbags` and numpy are installed.
Messages given to the writer may be rclpy messages, rosbags messages or plain dicts (fields by
name); images and depth may be numpy arrays.
"""

from dataclasses import dataclass, field
import functools
import json
import logging
import math
import os
from pathlib import Path
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

LOG = logging.getLogger(__name__)

NAMESPACE = '/deft'
INTERFACE_PACKAGE = 'deft_interfaces'
CUSTOM_TYPES = ('EpisodeRecord', 'GraspPrior')
CAMERA_FRAME = 'camera_color_optical_frame'
BAGS_DIR = 'bags'  # the subdirectory of a run directory that holds its episode bags
# role -> (topic relative to the namespace, message type)
TOPICS: Dict[str, Tuple[str, str]] = {
    'image': ('camera/color/image_raw', 'sensor_msgs/msg/Image'),
    'depth': ('camera/depth/image_raw', 'sensor_msgs/msg/Image'),
    'camera_info': ('camera/color/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'joint_states': ('hand/joint_states', 'sensor_msgs/msg/JointState'),
    'prior': ('affordance/prior', 'deft_interfaces/msg/GraspPrior'),
    'record': ('episodes', 'deft_interfaces/msg/EpisodeRecord'),
    'metadata': ('episode/metadata', 'std_msgs/msg/String'),
}
# encoding -> (numpy dtype, channels), as deft_common.image_codec (REP 118 for depth)
ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}
_DTYPES = {
    'bool': np.bool_, 'byte': np.uint8, 'char': np.uint8, 'int8': np.int8, 'uint8': np.uint8,
    'int16': np.int16, 'uint16': np.uint16, 'int32': np.int32, 'uint32': np.uint32,
    'int64': np.int64, 'uint64': np.uint64, 'float32': np.float32, 'float64': np.float64,
}
_TIME = 'builtin_interfaces/msg/Time'

Message = Any  # an rclpy or rosbags message, or a dict of its fields


class EpisodeBagError(ValueError):
    """A bag cannot be written or read; the message says which and why."""


@dataclass
class Frame:
    """
    One camera frame as the episode node keeps it.

    `rgb`: (H, W, 3) uint8 RGB array or a sensor_msgs/Image (any colour encoding).
    `camera_info`: a sensor_msgs/CameraInfo, or the 9 values of K (row-major); None: not recorded.
    `depth`: (H, W) float32 metres or uint16 millimetres array, or a sensor_msgs/Image; optional.
    `stamp_ns`: the frame's time; None takes the image message's header stamp (or now).
    """

    rgb: Any
    camera_info: Any = None
    depth: Any = None
    stamp_ns: Optional[int] = None
    frame_id: str = CAMERA_FRAME


FrameLike = Union[Frame, Tuple[Any, Any], Tuple[Any, Any, Any]]


@dataclass
class JointSample:
    """One hand/joint_states message."""

    stamp_ns: int
    names: List[str]
    positions: List[float]
    velocities: List[float] = field(default_factory=list)
    efforts: List[float] = field(default_factory=list)


@dataclass
class EpisodeBag:
    """What an episode bag holds, decoded; None / empty for what it did not record."""

    path: Path
    initial_rgb: Optional[np.ndarray] = None
    final_rgb: Optional[np.ndarray] = None
    initial_depth: Optional[np.ndarray] = None  # float32 metres, NaN where invalid
    final_depth: Optional[np.ndarray] = None
    initial_stamp_ns: int = -1
    final_stamp_ns: int = -1
    camera_k: Optional[List[float]] = None  # CameraInfo.k of the initial frame, row-major
    width: int = 0
    height: int = 0
    joint_states: List[JointSample] = field(default_factory=list)
    prior: Optional[Dict[str, Any]] = None  # GraspPrior fields (nested messages as dicts)
    record: Optional[Dict[str, Any]] = None  # EpisodeRecord fields
    metadata: Dict[str, Any] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)  # why topics / messages were skipped

    @property
    def reward(self) -> float:
        """Return the recorded reward (NaN without an episode record)."""
        return float(self.record['reward']) if self.record else math.nan

    @property
    def xi(self) -> List[float]:
        """Return the recorded prior parameters xi (empty without a record)."""
        return list(self.record['xi']) if self.record else []

    @property
    def eps(self) -> List[float]:
        """Return the recorded residual eps (empty without a record)."""
        return list(self.record['eps']) if self.record else []


# --- the type store ------------------------------------------------------------------------
def find_msg_dir(msg_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Return the directory of deft_interfaces' .msg files; FileNotFoundError naming the search."""
    if msg_dir is not None:
        candidates = [Path(msg_dir)]
    else:
        prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
        candidates = [Path(p) / 'share' / INTERFACE_PACKAGE / 'msg' for p in prefixes]
        # the virtual environment the set-up builds the interfaces into, then a source tree
        candidates.append(Path(sys.prefix) / 'share' / INTERFACE_PACKAGE / 'msg')
        candidates.append(Path(__file__).resolve().parents[2] / INTERFACE_PACKAGE / 'msg')
    for directory in candidates:
        if all((directory / f'{name}.msg').is_file() for name in CUSTOM_TYPES):
            return directory
    raise FileNotFoundError(
        f'no {INTERFACE_PACKAGE} .msg files ({", ".join(CUSTOM_TYPES)}) in '
        f'{", ".join(str(c) for c in candidates)}: set AMENT_PREFIX_PATH to the install prefix '
        'or pass msg_dir')


@functools.lru_cache(maxsize=4)
def _typestore(msg_dir: str) -> Typestore:
    store = get_typestore(getattr(Stores, 'ROS2_KILTED', Stores.LATEST))
    types = {}
    for name in CUSTOM_TYPES:
        text = (Path(msg_dir) / f'{name}.msg').read_text()
        types.update(get_types_from_msg(text, f'{INTERFACE_PACKAGE}/msg/{name}'))
    store.register(types)
    return store


def episode_typestore(msg_dir: Optional[Union[str, os.PathLike]] = None) -> Typestore:
    """Return a ROS 2 Kilted typestore with the deft_interfaces messages registered (cached)."""
    return _typestore(str(find_msg_dir(msg_dir)))


# --- messages from rclpy messages, rosbags messages, dicts, arrays -------------------------
def _get(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _time_fields(value: Any) -> Any:
    """Return int nanoseconds / float seconds as {'sec', 'nanosec'}; anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return value
    if isinstance(value, (float, np.floating)):
        value = int(round(float(value) * 1e9))
    sec, nanosec = divmod(int(value), 1_000_000_000)
    return {'sec': sec, 'nanosec': nanosec}


def _scalar(kind: str, value: Any) -> Any:
    if kind == 'string' or kind == 'wstring':
        return '' if value is None else str(value)
    if kind == 'bool':
        return bool(value) if value is not None else False
    if kind.startswith('float'):
        return float(value) if value is not None else 0.0
    if isinstance(value, (bytes, bytearray)):  # rclpy gives byte/char fields as bytes
        return value[0] if value else 0
    return int(value) if value is not None else 0


def _sequence(store: Typestore, desc: Any, value: Any, length: int) -> Any:
    (subtype, subdesc) = desc
    if subtype == Nodetype.BASE and subdesc[0] in _DTYPES:
        dtype = _DTYPES[subdesc[0]]
        if value is None:
            arr = np.zeros(length, dtype)
        elif dtype == np.uint8 and isinstance(value, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(bytes(value), np.uint8).copy()
        else:
            arr = np.asarray(value, dtype=dtype).reshape(-1)
        if length and arr.size != length:
            raise EpisodeBagError(f'expected {length} values, got {arr.size}')
        return arr
    items = [] if value is None else list(value)
    if length and len(items) != length:
        raise EpisodeBagError(f'expected {length} values, got {len(items)}')
    if subtype == Nodetype.BASE:
        return [_scalar(subdesc[0], v) for v in items]
    return [build_message(store, subdesc, v) for v in items]


def build_message(store: Typestore, typename: str, value: Any) -> Any:
    """
    Build the rosbags message `typename` from `value`, field by field.

    `value` is an rclpy or rosbags message, a dict of fields (missing fields take their defaults)
    or None (all defaults). builtin_interfaces/Time also takes int nanoseconds or float seconds.
    """
    if typename == _TIME:
        value = _time_fields(value)
    try:
        _, fields = store.fielddefs[typename]
    except KeyError:
        raise EpisodeBagError(f'message type {typename!r} is not in the type store') from None
    kwargs = {}
    for name, (nodetype, desc) in fields:
        item = _get(value, name)
        try:
            if nodetype == Nodetype.BASE:
                kwargs[name] = _scalar(desc[0], item)
            elif nodetype == Nodetype.NAME:
                kwargs[name] = build_message(store, desc, item)
            elif nodetype == Nodetype.ARRAY:
                kwargs[name] = _sequence(store, desc[0], item, desc[1])
            else:
                kwargs[name] = _sequence(store, desc[0], item, 0)
        except (TypeError, ValueError) as exc:
            raise EpisodeBagError(f'{typename}.{name}: {exc}') from exc
    return store.types[typename](**kwargs)


def to_plain(store: Typestore, typename: str, msg: Any) -> Dict[str, Any]:
    """Return a rosbags message as a dict of Python values (JSON-serialisable)."""
    _, fields = store.fielddefs[typename]
    out: Dict[str, Any] = {}
    for name, (nodetype, desc) in fields:
        value = getattr(msg, name)
        if nodetype == Nodetype.NAME:
            out[name] = to_plain(store, desc, value)
        elif nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            subtype, subdesc = desc[0]
            if subtype == Nodetype.NAME:
                out[name] = [to_plain(store, subdesc, v) for v in value]
            else:
                out[name] = np.asarray(value).tolist() if isinstance(value, np.ndarray) \
                    else list(value)
        else:
            out[name] = value.item() if isinstance(value, np.generic) else value
    return out


def stamp_ns(stamp: Any) -> int:
    """Return a Time (message or dict with sec, nanosec) in nanoseconds."""
    return int(_get(stamp, 'sec') or 0) * 1_000_000_000 + int(_get(stamp, 'nanosec') or 0)


def _header(stamp: int, frame_id: str) -> Dict[str, Any]:
    return {'stamp': stamp, 'frame_id': frame_id}


def image_fields(array: np.ndarray, encoding: Optional[str] = None) -> Dict[str, Any]:
    """Return the Image fields (no header) of an array: rgb8, mono8, 16UC1 or 32FC1 by dtype."""
    arr = np.ascontiguousarray(array)
    if encoding is None:
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            encoding = 'rgb8'
        elif arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16, np.float32, np.float64):
            encoding = {np.dtype(np.uint8): 'mono8', np.dtype(np.uint16): '16UC1'}.get(
                arr.dtype, '32FC1')
        else:
            raise EpisodeBagError(f'cannot record an image array of shape {arr.shape} and dtype '
                                  f'{arr.dtype}: give (H, W, 3) uint8 RGB, (H, W) uint16 mm '
                                  'or (H, W) float32 m')
    dtype, channels = ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return {'height': arr.shape[0], 'width': arr.shape[1], 'encoding': encoding,
            'is_bigendian': int(sys.byteorder == 'big'),
            'step': arr.shape[1] * channels * arr.itemsize, 'data': arr.tobytes()}


def image_array(msg: Any) -> np.ndarray:
    """Return an (H, W) or (H, W, C) array of an Image message, native byte order."""
    if msg.encoding not in ENCODINGS:
        raise EpisodeBagError(f'unsupported image encoding {msg.encoding!r}; '
                              f'supported: {", ".join(sorted(ENCODINGS))}')
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    row = msg.width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if msg.step < row or data.size < msg.step * msg.height:
        raise EpisodeBagError(f'image data too short: {data.size} bytes for {msg.height} rows '
                              f'of step {msg.step} ({msg.width}x{channels} {msg.encoding})')
    rows = data[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    arr = np.array(rows).view(dtype).astype(dtype.newbyteorder('='), copy=False)  # writable
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def image_rgb(msg: Any) -> np.ndarray:
    """Return a colour Image message as (H, W, 3) uint8 RGB."""
    arr = image_array(msg)
    if msg.encoding in ('rgb8', 'rgba8'):
        return np.ascontiguousarray(arr[..., :3])
    if msg.encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(arr[..., 2::-1])
    if msg.encoding in ('mono8', '8UC1'):
        return np.repeat(arr[..., None], 3, axis=2)
    raise EpisodeBagError(f'not a colour image encoding: {msg.encoding!r}')


def image_depth(msg: Any) -> np.ndarray:
    """Return a depth Image message as float32 metres (16UC1 is millimetres), NaN where invalid."""
    arr = image_array(msg)
    if msg.encoding == '32FC1':
        depth = arr.astype(np.float32, copy=True)
    elif msg.encoding in ('16UC1', 'mono16'):
        depth = arr.astype(np.float32) / 1000.0
    else:
        raise EpisodeBagError(f'depth image must be 32FC1 or 16UC1, got {msg.encoding!r}')
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


# --- writing -------------------------------------------------------------------------------
def episode_bag_path(run_dir: Union[str, os.PathLike], episode: int) -> Path:
    """Return where a run keeps the bag of an episode: <run_dir>/bags/<episode:06d>."""
    return Path(run_dir) / BAGS_DIR / f'{int(episode):06d}'


def _as_frame(value: FrameLike, what: str) -> Frame:
    if isinstance(value, Frame):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Frame(rgb=value[0], camera_info=value[1])
    if isinstance(value, tuple) and len(value) == 3:
        return Frame(rgb=value[0], depth=value[1], camera_info=value[2])
    raise EpisodeBagError(f'{what} must be a Frame, (rgb, camera_info) or '
                          f'(rgb, depth, camera_info), got {type(value).__name__}')


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


class EpisodeBagWriter:
    """Writes episode bags; keep one for the node's life (the type store is built once)."""

    def __init__(self, namespace: str = NAMESPACE,
                 msg_dir: Optional[Union[str, os.PathLike]] = None):
        self.namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
        self.store = episode_typestore(msg_dir)

    def topic(self, role: str) -> str:
        """Return the full topic name of a role (see TOPICS)."""
        return f'{self.namespace}/{TOPICS[role][0]}'

    def _frame_messages(self, frame: Frame, fallback_ns: int) -> List[Tuple[str, int, Any]]:
        out = []
        rgb = frame.rgb
        if rgb is None:
            return out
        if _is_array(rgb):
            fields = image_fields(rgb)
            if fields['encoding'] != 'rgb8':
                raise EpisodeBagError(f'the colour frame must be (H, W, 3) uint8 RGB, got an '
                                      f'array of shape {rgb.shape} ({rgb.dtype})')
            stamp = frame.stamp_ns if frame.stamp_ns is not None else fallback_ns
            image = build_message(self.store, TOPICS['image'][1],
                                  dict(fields, header=_header(stamp, frame.frame_id)))
        else:
            image = build_message(self.store, TOPICS['image'][1], rgb)
            given = stamp_ns(image.header.stamp)
            stamp = frame.stamp_ns if frame.stamp_ns is not None else (given or fallback_ns)
            image.header.stamp = build_message(self.store, _TIME, stamp)
        frame_id = image.header.frame_id or frame.frame_id
        image.header.frame_id = frame_id
        out.append(('image', stamp, image))
        if frame.depth is not None:
            if _is_array(frame.depth):
                fields = image_fields(frame.depth)
                depth = build_message(self.store, TOPICS['depth'][1],
                                      dict(fields, header=_header(stamp, frame_id)))
            else:
                depth = build_message(self.store, TOPICS['depth'][1], frame.depth)
                depth.header.stamp = build_message(self.store, _TIME, stamp)
            out.append(('depth', stamp, depth))
        info = frame.camera_info
        if info is not None:
            if _is_array(info) or isinstance(info, (list, tuple)):
                k = [float(v) for v in np.asarray(info, dtype=float).reshape(-1)]
                if len(k) != 9:
                    raise EpisodeBagError(f'camera_info as K needs 9 values, got {len(k)}')
                info = {'height': image.height, 'width': image.width,
                        'distortion_model': 'plumb_bob', 'd': [0.0] * 5, 'k': k,
                        'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                        'p': [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]}
            msg = build_message(self.store, TOPICS['camera_info'][1], info)
            msg.header.stamp = build_message(self.store, _TIME, stamp)
            msg.header.frame_id = msg.header.frame_id or frame_id
            out.append(('camera_info', stamp, msg))
        return out

    def _joint_message(self, sample: Any, fallback_ns: int) -> Tuple[str, int, Any]:
        if isinstance(sample, JointSample):
            sample = {'header': {'stamp': sample.stamp_ns}, 'name': sample.names,
                      'position': sample.positions, 'velocity': sample.velocities,
                      'effort': sample.efforts}
        elif isinstance(sample, tuple) and len(sample) == 3:
            sample = {'header': {'stamp': sample[0]}, 'name': sample[1], 'position': sample[2]}
        msg = build_message(self.store, TOPICS['joint_states'][1], sample)
        return 'joint_states', stamp_ns(msg.header.stamp) or fallback_ns, msg

    def write(self, path: Union[str, os.PathLike], *, initial: FrameLike,
              final: Optional[FrameLike] = None, joint_states: Sequence[Any] = (),
              prior: Optional[Message] = None, record: Optional[Message] = None,
              metadata: Optional[Mapping[str, Any]] = None) -> Path:
        """
        Write the episode bag directory `path` atomically; return it.

        FileExistsError if `path` exists; EpisodeBagError (a ValueError) for data that does not
        fit its message type. `record.bag_path` is set to `path` when empty.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f'episode bag {path} exists already; bags are never overwritten')
        now = time.time_ns()
        first = _as_frame(initial, 'initial')
        messages = self._frame_messages(first, now)
        t0 = messages[0][1] if messages else now
        if final is not None:
            messages += self._frame_messages(_as_frame(final, 'final'), max(now, t0 + 1))
        t_end = max((m[1] for m in messages), default=now)
        messages += [self._joint_message(s, t0) for s in joint_states]
        if prior is not None:
            msg = build_message(self.store, TOPICS['prior'][1], prior)
            messages.append(('prior', stamp_ns(msg.header.stamp) or t0, msg))
        if record is not None:
            msg = build_message(self.store, TOPICS['record'][1], record)
            msg.bag_path = msg.bag_path or str(path)
            messages.append(('record', stamp_ns(msg.stamp) or t_end, msg))
        custom = {str(k): v if isinstance(v, str) else json.dumps(v)
                  for k, v in (metadata or {}).items()}
        if metadata:
            text = json.dumps(dict(metadata), sort_keys=True, default=str)
            messages.append(('metadata', t_end, build_message(
                self.store, TOPICS['metadata'][1], {'data': text})))
        messages.sort(key=lambda m: m[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp'))
        try:
            inner = work / path.name
            self._write_bag(inner, messages, custom)
            for file in inner.iterdir():
                with open(file, 'rb') as f:
                    os.fsync(f.fileno())
            _fsync_dir(inner)
            os.rename(inner, path)  # fails rather than replace a bag that appeared meanwhile
            _fsync_dir(path.parent)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return path

    def _write_bag(self, path: Path, messages: List[Tuple[str, int, Any]],
                   custom: Mapping[str, str]) -> None:
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        for key, value in custom.items():
            writer.set_custom_data(key, value)
        writer.open()
        try:
            connections = {}
            for role, _, _ in messages:
                if role not in connections:
                    connections[role] = writer.add_connection(
                        self.topic(role), TOPICS[role][1], typestore=self.store)
            for role, stamp, msg in messages:
                data = self.store.serialize_cdr(msg, TOPICS[role][1])
                writer.write(connections[role], stamp, data)
        except BaseException:
            writer.abort()
            raise
        writer.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_episode_bag(path: Union[str, os.PathLike], *, initial: FrameLike,
                      final: Optional[FrameLike] = None, joint_states: Sequence[Any] = (),
                      prior: Optional[Message] = None, record: Optional[Message] = None,
                      metadata: Optional[Mapping[str, Any]] = None,
                      namespace: str = NAMESPACE,
                      msg_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Write one episode bag (see EpisodeBagWriter.write); return its path."""
    return EpisodeBagWriter(namespace, msg_dir).write(
        path, initial=initial, final=final, joint_states=joint_states, prior=prior,
        record=record, metadata=metadata)


# --- reading -------------------------------------------------------------------------------
def _role(topic: str, namespace: Optional[str]) -> Optional[str]:
    for role, (relative, _) in TOPICS.items():
        if namespace is None:
            if topic == '/' + relative or topic.endswith('/' + relative):
                return role
        elif topic == f'{namespace.rstrip("/")}/{relative}':
            return role
    return None


def is_bag(path: Union[str, os.PathLike]) -> bool:
    """Return True for a rosbag2 directory (metadata.yaml) or a single .mcap file."""
    path = Path(path)
    return (path.is_dir() and (path / 'metadata.yaml').is_file()) or \
        (path.is_file() and path.suffix == '.mcap')


def read_episode_bag(path: Union[str, os.PathLike], namespace: Optional[str] = None,
                     msg_dir: Optional[Union[str, os.PathLike]] = None) -> EpisodeBag:
    """
    Read an episode bag; topics and types it does not know are skipped with a warning.

    `namespace` None accepts the episode topics under any namespace. The first colour frame is
    I0, the last one (when there are two or more) the final frame; depth likewise. Raises
    EpisodeBagError when `path` is not a readable rosbag2.
    """
    path = Path(path)
    store = episode_typestore(msg_dir)
    bag = EpisodeBag(path=path)

    def skip(reason: str) -> None:
        LOG.warning('%s: %s', path, reason)
        bag.skipped.append(reason)

    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, FileNotFoundError, YAML errors, ...
        raise EpisodeBagError(f'{path} is not a readable rosbag2: {exc}') from exc
    images, depths, infos = [], [], []
    try:
        wanted = {}
        for conn in reader.connections:
            role = _role(conn.topic, namespace)
            if role is None:
                skip(f'skipping topic {conn.topic} ({conn.msgtype}): not an episode topic')
                continue
            expected = TOPICS[role][1]
            if conn.msgtype != expected:
                skip(f'skipping topic {conn.topic}: type {conn.msgtype}, expected {expected}')
                continue
            digest = conn.digest if str(conn.digest).startswith('RIHS01_') else ''
            if digest and digest != store.hash_rihs01(expected):
                skip(f'skipping topic {conn.topic}: its {expected} definition differs from '
                     f'the installed one (hash {digest})')
                continue
            wanted[conn.id] = role
        connections = [c for c in reader.connections if c.id in wanted]
        messages = reader.messages(connections=connections) if connections else ()
        for conn, log_ns, raw in messages:
            role = wanted[conn.id]
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # noqa: B902 - corrupt data of any kind
                skip(f'skipping a message on {conn.topic} at {log_ns}: cannot deserialise '
                     f'({type(exc).__name__}: {exc})')
                continue
            if role == 'image':
                images.append(msg)
            elif role == 'depth':
                depths.append(msg)
            elif role == 'camera_info':
                infos.append(msg)
            elif role == 'joint_states':
                bag.joint_states.append(JointSample(
                    stamp_ns(msg.header.stamp) or log_ns, list(msg.name),
                    np.asarray(msg.position).tolist(), np.asarray(msg.velocity).tolist(),
                    np.asarray(msg.effort).tolist()))
            elif role == 'prior':
                bag.prior = to_plain(store, conn.msgtype, msg)
            elif role == 'record':
                bag.record = to_plain(store, conn.msgtype, msg)
            elif role == 'metadata':
                try:
                    bag.metadata.update(json.loads(msg.data))
                except (ValueError, TypeError):
                    skip(f'skipping {conn.topic}: not a JSON object')
    finally:
        reader.close()
    _decode_frames(bag, images, depths, infos, skip)
    return bag


def _decode_frames(bag: EpisodeBag, images, depths, infos, skip) -> None:
    try:
        if images:
            bag.initial_rgb = image_rgb(images[0])
            bag.initial_stamp_ns = stamp_ns(images[0].header.stamp)
            bag.height, bag.width = bag.initial_rgb.shape[:2]
        if len(images) > 1:
            bag.final_rgb = image_rgb(images[-1])
            bag.final_stamp_ns = stamp_ns(images[-1].header.stamp)
    except EpisodeBagError as exc:
        skip(f'skipping the colour frames: {exc}')
    try:
        if depths:
            bag.initial_depth = image_depth(depths[0])
        if len(depths) > 1:
            bag.final_depth = image_depth(depths[-1])
    except EpisodeBagError as exc:
        skip(f'skipping the depth frames: {exc}')
    if infos:
        bag.camera_k = np.asarray(infos[0].k, dtype=float).tolist()
        if not bag.width:
            bag.width, bag.height = int(infos[0].width), int(infos[0].height)
