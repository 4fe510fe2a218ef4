"""
The prior drawn on the camera image: what the operator checks before the arm moves.

`draw_prior_view` tints the segmented object, rings each predicted contact pixel and draws the
wrist's approach direction: an arrow from the 3D contact point against the palm's approach axis
(+z of the wrist frame, deft_arm), `arrow` metres long, projected through the camera model. The
affordance node publishes it on `affordance/prior_view` after each prediction (latched: a panel
that starts later still gets the last one); RViz and the operator panel show it.
"""

from typing import Sequence

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform

MASK_TINT = (40, 200, 255)  # the object: cyan
CONTACT = (255, 40, 40)  # contact pixels: red rings
WRIST = (255, 220, 0)  # the approach arrow: yellow


def project(points_base: np.ndarray, camera_to_base: Transform, k: Sequence[float]) -> np.ndarray:
    """Return the (N, 2) pixels of base-frame points (NaN for points behind the camera)."""
    cam = camera_to_base.inverse().apply(np.asarray(points_base, dtype=float).reshape(-1, 3))
    k = np.asarray(k, dtype=float).reshape(3, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = np.stack([k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2],
                       k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]], axis=1)
    uv[cam[:, 2] <= 1e-6] = np.nan
    return uv


def draw_prior_view(rgb: np.ndarray, mask: np.ndarray, contact_pixels: Sequence[float],
                    contact_base: Sequence[float], wrist: Sequence[float],
                    camera_to_base: Transform, k: Sequence[float],
                    arrow: float = 0.08) -> np.ndarray:
    """
    Return a copy of `rgb` (H, W, 3 uint8) with the mask, contacts and approach drawn on it.

    `mask` is (H, W), non-zero on the object; `contact_pixels` u, v pairs of the full image;
    `contact_base` the 3D contact and `wrist` the wrist quaternion (x y z w), base frame.
    ValueError when the mask is not the image's size.
    """
    from PIL import Image, ImageDraw

    rgb = np.asarray(rgb, dtype=np.uint8)
    mask = np.asarray(mask) > 0
    if rgb.ndim != 3 or rgb.shape[2] != 3 or mask.shape != rgb.shape[:2]:
        raise ValueError(f'need an (H, W, 3) image and an (H, W) mask, got {rgb.shape} and '
                         f'{mask.shape}')
    out = rgb.astype(np.float32)
    out[mask] = 0.55 * out[mask] + 0.45 * np.array(MASK_TINT, np.float32)
    image = Image.fromarray(out.astype(np.uint8))
    pen = ImageDraw.Draw(image)
    r = max(4, rgb.shape[1] // 64)  # 10 px at 640: still visible in a panel a third as wide
    pixels = np.asarray(contact_pixels, dtype=float).reshape(-1, 2)
    for u, v in pixels[np.all(np.isfinite(pixels), axis=1)]:
        pen.ellipse([u - r, v - r, u + r, v + r], outline=CONTACT, width=max(2, r // 2))
    c = np.asarray(contact_base, dtype=float)
    approach = rotations.rotate(rotations.normalize(wrist), [0.0, 0.0, 1.0])
    tail, head = project(np.stack([c - arrow * approach, c]), camera_to_base, k)
    if np.all(np.isfinite(tail)) and np.all(np.isfinite(head)):
        pen.line([tuple(tail), tuple(head)], fill=WRIST, width=max(2, r // 2))
        d = head - tail
        n = float(np.hypot(*d))
        if n > 1e-6:  # the arrow head points where the palm moves: towards the contact
            d /= n
            side = np.array([-d[1], d[0]])
            tip = [tuple(head), tuple(head - 2.5 * r * d + 1.2 * r * side),
                   tuple(head - 2.5 * r * d - 1.2 * r * side)]
            pen.polygon(tip, fill=WRIST)
    return np.asarray(image)
