"""
Image messages <-> numpy for the encodings the stack uses (REP 118 for depth), without rclpy.

Works on any object with the fields of sensor_msgs/Image (height, width, encoding, is_bigendian,
step, data): rclpy messages (deft_common.image_codec), rosbags messages and plain namespaces
(deft_replay's bags). Errors are ValueError naming what is wrong.
"""

import sys
from typing import Any, Dict, Optional

import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}


def array_of(msg: Any) -> np.ndarray:
    """Return an (H, W) or (H, W, C) array of an image message's data, native byte order."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}; '
                         f'supported: {", ".join(sorted(ENCODINGS))}')
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    row = msg.width * channels * dtype.itemsize
    data = msg.data
    raw = (data if isinstance(data, np.ndarray) else
           np.frombuffer(bytes(data), dtype=np.uint8)).reshape(-1)
    if msg.step < row or raw.size < msg.step * msg.height:
        raise ValueError(f'image data too short: {raw.size} bytes for {msg.height} rows '
                         f'of step {msg.step} ({msg.width}x{channels} {msg.encoding})')
    rows = raw[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    arr = np.array(rows).view(dtype).astype(dtype.newbyteorder('='), copy=False)  # writable
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def rgb_of(msg: Any) -> np.ndarray:
    """Return a colour image message as (H, W, 3) uint8 RGB, whatever its colour encoding."""
    arr = array_of(msg)
    if msg.encoding in ('rgb8', 'rgba8'):
        return np.ascontiguousarray(arr[..., :3])
    if msg.encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(arr[..., 2::-1])
    if msg.encoding in ('mono8', '8UC1'):
        return np.repeat(arr[..., None], 3, axis=2)
    raise ValueError(f'not a colour image encoding: {msg.encoding!r}')


def depth_of(msg: Any) -> np.ndarray:
    """Return a depth image as float32 metres (16UC1 is millimetres); NaN where invalid (0)."""
    arr = array_of(msg)
    if msg.encoding == '32FC1':
        depth = arr.astype(np.float32, copy=True)
    elif msg.encoding in ('16UC1', 'mono16'):
        depth = arr.astype(np.float32) / 1000.0
    else:
        raise ValueError(f'depth image must be 32FC1 or 16UC1, got {msg.encoding!r}')
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def fields_of(array: np.ndarray, encoding: Optional[str] = None) -> Dict[str, Any]:
    """
    Return the Image fields (height, width, encoding, is_bigendian, step, data) of an array.

    Without `encoding` it is chosen from the array: (H, W, 3) uint8 rgb8, (H, W) uint8 mono8,
    uint16 16UC1 (millimetres), float 32FC1 (metres).
    """
    arr = np.asarray(array)
    if encoding is None:
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            encoding = 'rgb8'
        elif arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16, np.float32, np.float64):
            encoding = {np.dtype(np.uint8): 'mono8', np.dtype(np.uint16): '16UC1'}.get(
                arr.dtype, '32FC1')
        else:
            raise ValueError(f'no image encoding for an array of shape {arr.shape} and dtype '
                             f'{arr.dtype}: give (H, W, 3) uint8 RGB, (H, W) uint16 mm or '
                             '(H, W) float32 m')
    if encoding not in ENCODINGS:
        raise ValueError(f'unsupported image encoding {encoding!r}')
    dtype, channels = ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim == 2 and channels != 1 or arr.ndim == 3 and arr.shape[2] != channels:
        raise ValueError(f'array of shape {arr.shape} does not fit encoding {encoding}')
    return {'height': arr.shape[0], 'width': arr.shape[1], 'encoding': encoding,
            'is_bigendian': int(sys.byteorder == 'big'),
            'step': arr.shape[1] * channels * arr.itemsize, 'data': arr.tobytes()}
