"""sensor_msgs/Image <-> numpy, for the encodings the stack uses (REP 118 for depth).

cv_bridge for ROS 2 is not installable from PyPI; these lines read encoding, step and byte order.
"""

import sys
import threading
from typing import Optional

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}


def to_array(msg: Image) -> np.ndarray:
    """Return an (H, W) or (H, W, C) array viewing the message's data in native byte order."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}; '
                         f'supported: {", ".join(sorted(ENCODINGS))}')
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    row = msg.width * channels * dtype.itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(f'image data too short: {len(msg.data)} bytes for {msg.height} rows '
                         f'of step {msg.step} ({msg.width}x{channels} {msg.encoding})')
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder('='), copy=False)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def to_msg(array: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """Build an Image from an array whose dtype and channel count match `encoding`."""
    if encoding not in ENCODINGS:
        raise ValueError(f'unsupported image encoding {encoding!r}')
    dtype, channels = ENCODINGS[encoding]
    arr = np.ascontiguousarray(array, dtype=dtype)
    if arr.ndim == 2 and channels != 1 or arr.ndim == 3 and arr.shape[2] != channels:
        raise ValueError(f'array of shape {arr.shape} does not fit encoding {encoding}')
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = arr.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big')
    msg.step = msg.width * channels * arr.itemsize
    msg.data = arr.tobytes()
    return msg


def depth_in_metres(msg: Image) -> np.ndarray:
    """Depth image as float32 metres: 32FC1 as is, 16UC1 millimetres scaled; 0 becomes NaN."""
    arr = to_array(msg)
    if msg.encoding == '32FC1':
        depth = arr.astype(np.float32, copy=True)
    elif msg.encoding in ('16UC1', 'mono16'):
        depth = arr.astype(np.float32) / 1000.0
    else:
        raise ValueError(f'depth image must be 32FC1 or 16UC1, got {msg.encoding!r}')
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def to_rgb(msg: Image) -> np.ndarray:
    """Colour image as (H, W, 3) uint8 RGB whatever the colour encoding."""
    arr = to_array(msg)
    if msg.encoding in ('rgb8', 'rgba8'):
        return np.ascontiguousarray(arr[..., :3])
    if msg.encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(arr[..., 2::-1])
    if msg.encoding in ('mono8', '8UC1'):
        return np.repeat(arr[..., None], 3, axis=2)
    raise ValueError(f'not a colour image encoding: {msg.encoding!r}')


class LatestFrame:
    """The newest message of an image topic, kept by a subscription callback (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._msg: Optional[Image] = None

    def keep(self, msg: Image) -> None:
        """Store a message (use as the subscription callback)."""
        with self._lock:
            self._msg = msg

    def msg(self) -> Optional[Image]:
        """Return the newest message as received (None when none came)."""
        with self._lock:
            return self._msg

    def stamp_ns(self) -> int:
        """Return the header stamp of the newest frame in nanoseconds (-1 when none came)."""
        with self._lock:
            msg = self._msg
        if msg is None:
            return -1
        return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)

    def rgb(self) -> np.ndarray:
        """Return the newest frame as (H, W, 3) uint8 RGB; ValueError if none or undecodable."""
        with self._lock:
            msg = self._msg
        if msg is None:
            raise ValueError('no camera frame received yet')
        return to_rgb(msg)

    def latest_rgb_or_none(self) -> Optional[np.ndarray]:
        """Return the newest frame as RGB, or None when there is none or it cannot be decoded."""
        try:
            return self.rgb()
        except ValueError:
            return None
