"""sensor_msgs/Image <-> numpy (deft_common.image_arrays), and the newest frame of a topic.

cv_bridge for ROS 2 is not installable from PyPI; image_arrays reads encoding, step and byte order.
"""

import threading
from typing import Optional

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from deft_common.image_arrays import ENCODINGS, array_of, depth_of, fields_of, rgb_of  # noqa: F401


def to_array(msg: Image) -> np.ndarray:
    """Return an (H, W) or (H, W, C) array of the message's data in native byte order."""
    return array_of(msg)


def to_msg(array: np.ndarray, encoding: str, header: Optional[Header] = None) -> Image:
    """Build an Image from an array whose dtype and channel count match `encoding`."""
    msg = Image(**fields_of(array, encoding))
    if header is not None:
        msg.header = header
    return msg


def depth_in_metres(msg: Image) -> np.ndarray:
    """Depth image as float32 metres: 32FC1 as is, 16UC1 millimetres scaled; 0 becomes NaN."""
    return depth_of(msg)


def to_rgb(msg: Image) -> np.ndarray:
    """Colour image as (H, W, 3) uint8 RGB whatever the colour encoding."""
    return rgb_of(msg)


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
