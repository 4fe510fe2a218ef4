"""Pinhole camera geometry: back-projection robust to invalid depth, boxes, square crops."""

from dataclasses import dataclass
import math
from typing import Optional, Sequence, Tuple

import numpy as np


class CameraInfoError(ValueError):
    """A camera_info that cannot describe the images: the message names the value and a fix."""


CHECK_CAMERA = 'check the camera driver and its calibration'


def check_camera_info(k: Sequence[float], width: int, height: int,
                      image_size: Optional[Tuple[int, int]] = None
                      ) -> Tuple[float, float, float, float, int, int]:
    """Return (fx, fy, cx, cy, width, height) of a camera_info, or raise CameraInfoError."""
    try:
        k = [float(v) for v in k]
    except (TypeError, ValueError) as exc:
        raise CameraInfoError(f'camera_info K is not numeric: {exc}') from exc
    if len(k) != 9:
        raise CameraInfoError(f'camera_info K has {len(k)} values, not 9: {CHECK_CAMERA}')
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    for name, value in (('fx', fx), ('fy', fy)):
        if not math.isfinite(value) or value <= 0:
            raise CameraInfoError(f'camera_info {name} = {value}: a focal length must be finite '
                                  f'and > 0 ({CHECK_CAMERA})')
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise CameraInfoError(f'camera_info size {width}x{height} is empty: {CHECK_CAMERA}')
    for name, value, size in (('cx', cx, width), ('cy', cy, height)):
        if not math.isfinite(value) or not 0 <= value < size:
            raise CameraInfoError(f'camera_info {name} = {value}: the principal point must lie '
                                  f'inside the {width}x{height} image ({CHECK_CAMERA})')
    if image_size is not None and (height, width) != tuple(int(s) for s in image_size):
        raise CameraInfoError(
            f'camera_info is for {width}x{height} images but the colour image is '
            f'{image_size[1]}x{image_size[0]}: the intrinsics belong to another resolution (set '
            'the camera driver to the calibrated one, or remap the matching camera_info)')
    return fx, fy, cx, cy, width, height


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of an undistorted pinhole camera, pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @staticmethod
    def from_camera_info(k: Sequence[float], width: int, height: int,
                         image_size: Optional[Tuple[int, int]] = None) -> 'CameraModel':
        """
        From sensor_msgs/CameraInfo.k (row-major 3x3) and its size; CameraInfoError if unusable.

        The focal lengths must be finite and > 0, the principal point finite and inside the
        image, the size positive and, given `image_size` (height, width of the colour image
        the intrinsics are used with), equal to it.
        """
        return CameraModel(*check_camera_info(k, width, height, image_size))

    def backproject(self, mask: np.ndarray, depth: np.ndarray) -> Tuple[np.ndarray, float]:
        """Return (3D points N x 3 in the optical frame, fraction of mask pixels with depth)."""
        if mask.shape != depth.shape:
            raise ValueError(f'mask {mask.shape} and depth {depth.shape} differ in size')
        v, u = np.nonzero(mask)
        z = depth[v, u].astype(float)
        ok = np.isfinite(z) & (z > 0)
        frac = float(ok.mean()) if z.size else 0.0
        u, v, z = u[ok], v[ok], z[ok]
        pts = np.stack([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z], axis=1)
        return pts, frac

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project optical-frame points (N, 3) to pixels (N, 2)."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx,
                         self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)


def mask_box(mask: np.ndarray) -> Tuple[int, int, int, int]:
    """Return (u0, v0, u1, v1) of the mask, exclusive upper bounds; ValueError if empty."""
    v, u = np.nonzero(mask)
    if u.size == 0:
        raise ValueError('empty mask')
    return int(u.min()), int(v.min()), int(u.max()) + 1, int(v.max()) + 1


def crop_window(box, margin: float, width: int, height: int) -> Tuple[int, int, int]:
    """Return a square (u0, v0, side) around the box with a margin, inside the image."""
    u0, v0, u1, v1 = box
    side = int(np.ceil(max(u1 - u0, v1 - v0) * (1.0 + 2.0 * margin)))
    side = max(1, min(side, width, height))
    cu, cv = (u0 + u1) / 2.0, (v0 + v1) / 2.0
    x0 = int(np.clip(round(cu - side / 2.0), 0, width - side))
    y0 = int(np.clip(round(cv - side / 2.0), 0, height - side))
    return x0, y0, side


def crop_resize(rgb: np.ndarray, window, size: int) -> np.ndarray:
    """Crop the square window and resize it to size x size (bilinear)."""
    x0, y0, side = window
    crop = rgb[y0:y0 + side, x0:x0 + side].astype(float)
    pos = (np.arange(size) + 0.5) * side / size - 0.5
    p = np.clip(pos, 0, side - 1)
    i0 = np.floor(p).astype(int)
    i1 = np.minimum(i0 + 1, side - 1)
    f = p - i0
    rows = crop[i0] * (1 - f)[:, None, None] + crop[i1] * f[:, None, None]
    out = rows[:, i0] * (1 - f)[None, :, None] + rows[:, i1] * f[None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
