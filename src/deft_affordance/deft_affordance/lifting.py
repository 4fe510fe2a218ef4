"""
From the model's crop pixels to a 3D contact in the camera frame (pure, no rclpy).

The affordance model sees `crop` (square, crop_size px) resized from the image window
`crop_window` (x0, y0, side) that perception/segment returned; the object's 3D points come from
depth in the camera optical frame. The contact is lifted to the object point whose projection is
nearest to it (the object's surface under the predicted pixel), so missing depth at that very
pixel does not lose the prediction.
"""

from typing import Sequence, Tuple

import numpy as np


def crop_to_image(contact_px: Sequence[float], window: Tuple[float, float, float],
                  crop_size: int) -> np.ndarray:
    """Map (u, v) pixels of the resized crop to pixels of the full image (pixel centres)."""
    u, v = (float(x) for x in contact_px)
    x0, y0, side = (float(x) for x in window)
    if crop_size <= 0 or side <= 0:
        raise ValueError(f'crop_size ({crop_size}) and the window side ({side}) must be > 0')
    scale = side / crop_size
    return np.array([x0 + (u + 0.5) * scale - 0.5, y0 + (v + 0.5) * scale - 0.5])


def lift_contact(pixel: Sequence[float], points: np.ndarray,
                 k: Sequence[float]) -> Tuple[np.ndarray, float]:
    """
    Return (3D point in the camera frame, its pixel distance to `pixel`).

    `points`: (N, 3) object points in the camera optical frame (z forward, metres); `k`: the 9
    values of the camera matrix K. ValueError when there is no point in front of the camera.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1) & (pts[:, 2] > 0)]
    if len(pts) == 0:
        raise ValueError('the object has no valid 3D points to lift the contact to')
    k = np.asarray(k, dtype=float).reshape(3, 3)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError('camera matrix K has no positive focal lengths (no camera_info yet?)')
    u = k[0, 0] * pts[:, 0] / pts[:, 2] + k[0, 2]
    v = k[1, 1] * pts[:, 1] / pts[:, 2] + k[1, 2]
    d = np.hypot(u - pixel[0], v - pixel[1])
    i = int(np.argmin(d))
    return pts[i].copy(), float(d[i])
