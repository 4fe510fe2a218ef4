"""
From the model's crop pixels to a 3D contact in the camera frame (pure, no rclpy).

The affordance model sees `crop` (square, crop_size px) resized from the image window
`crop_window` (x0, y0, side) that perception/segment returned; the object's 3D points come from
depth in the camera optical frame. The contact is lifted to the object point whose projection is
nearest to it (the object's surface under the predicted pixel), so missing depth at that very
pixel does not lose the prediction. `model_grasp` is the whole step from a prediction to the
base-frame prior, shared by the affordance node and the simulated evaluation
(deft_eval.sim_eval).
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from deft_common import rotations


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


@dataclass(frozen=True)
class ModelGrasp:
    """The model's prior in the base frame: what affordance/predict answers for `model`."""

    contact_point: np.ndarray         # (3,) m, base frame: the mean contact lifted onto the object
    wrist_orientation: np.ndarray     # (4,) x y z w, base frame
    hand_joint_names: List[str]       # the hand config's order
    hand_joint_positions: np.ndarray  # retargeted MANO pose, rad, in hand_joint_names' order
    hand_pose: np.ndarray             # (45,) the predicted MANO pose
    pixels: np.ndarray                # (2K,) the K contacts as u, v pairs of the full image
    lift_distance_px: float           # pixel distance from the mean contact to the lifted point


def model_grasp(prediction, crop_size: int, window: Tuple[float, float, float],
                object_points: np.ndarray, k: Sequence[float], camera_to_base,
                retargeter, joint_names: Sequence[str],
                max_lift_distance_px: float) -> ModelGrasp:
    """
    Turn a prediction of f(crop, task) into the base-frame grasp prior (pure: no rclpy).

    `prediction` has contact_points (K, 2 crop px), mean_contact, wrist_quaternion (camera
    optical frame) and hand_pose (MANO 45) (an `AffordancePrediction`); `crop_size` is the side
    of the crop it saw, cut from the image `window` (x0, y0, side); `object_points` are the
    object's 3D points in the camera optical frame, `k` the camera matrix (9 values),
    `camera_to_base` a Transform (the camera optical frame in the base frame). The mean contact
    is lifted to the object point nearest to it in pixels (ValueError if that is farther than
    `max_lift_distance_px`); the wrist goes to the base frame with the camera's rotation; the
    MANO pose is retargeted (`retargeter.reset()` first: one pose per grasp) and its joints are
    returned by name in the order `joint_names`.
    """
    pixels = [crop_to_image(c, window, crop_size) for c in prediction.contact_points]
    pixel = crop_to_image(prediction.mean_contact, window, crop_size)
    point, dist = lift_contact(pixel, np.asarray(object_points).reshape(-1, 3), k)
    if dist > max_lift_distance_px:
        raise ValueError(f'the predicted contact is {dist:.0f} px from the object '
                         f'(max_lift_distance_px {max_lift_distance_px})')
    retargeter.reset()
    joints = retargeter.retarget(prediction.hand_pose, np.zeros(3))
    by_name = dict(zip(retargeter.hand.joint_names, joints))
    return ModelGrasp(
        contact_point=camera_to_base.apply(point[None])[0],
        wrist_orientation=rotations.normalize(rotations.multiply(
            camera_to_base.rotation, prediction.wrist_quaternion)),
        hand_joint_names=list(joint_names),
        hand_joint_positions=np.array([by_name[n] for n in joint_names]),
        hand_pose=np.asarray(prediction.hand_pose, dtype=float),
        pixels=np.concatenate(pixels), lift_distance_px=dist)
