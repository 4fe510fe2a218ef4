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
import math
import os
from pathlib import Path
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from deft_common.image_arrays import array_of, depth_of, fields_of, rgb_of

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


def _as_bag_error(convert: Callable[..., Any], *args) -> Any:
    try:
        return convert(*args)
    except ValueError as exc:
        raise EpisodeBagError(str(exc)) from exc


def image_fields(array: np.ndarray, encoding: Optional[str] = None) -> Dict[str, Any]:
    """Return the Image fields (no header) of an array: rgb8, mono8, 16UC1 or 32FC1 by dtype."""
    return _as_bag_error(fields_of, array, encoding)


def image_array(msg: Any) -> np.ndarray:
    """Return an (H, W) or (H, W, C) array of an Image message, native byte order."""
    return _as_bag_error(array_of, msg)


def image_rgb(msg: Any) -> np.ndarray:
    """Return a colour Image message as (H, W, 3) uint8 RGB."""
    return _as_bag_error(rgb_of, msg)


def image_depth(msg: Any) -> np.ndarray:
    """Return a depth Image message as float32 metres (16UC1 is millimetres), NaN where invalid."""
    return _as_bag_error(depth_of, msg)
