"""
The `fake` affordance backend: a geometric stand-in for the learned model f(object, task).

It ignores the task text. Contact = the centroid of the object's top surface (points within
`top_band` of its highest point); wrist = a top-down grasp (palm +z pointing down) turned by
`wrist_yaw` about the vertical; hand = a named pose of the hand config. No MANO pose is estimated.
"""

from dataclasses import dataclass
from typing import List

import numpy as np

from deft_common import rotations

TOP_DOWN = np.array([1.0, 0.0, 0.0, 0.0])


@dataclass(frozen=True)
class GeometricGrasp:
    """A grasp prior in the base frame."""

    contact_point: np.ndarray
    wrist_orientation: np.ndarray
    hand_joint_names: List[str]
    hand_joint_positions: np.ndarray


def geometric_prior(points: np.ndarray, joint_names: List[str], hand_pose: np.ndarray,
                    top_band: float = 0.02, wrist_yaw: float = 0.0) -> GeometricGrasp:
    """Build the prior from object points (N x 3, base frame, z up)."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        raise ValueError('the object has no valid 3D points')
    top = points[points[:, 2] >= points[:, 2].max() - top_band]
    wrist = rotations.multiply(rotations.from_rotvec([0.0, 0.0, wrist_yaw]), TOP_DOWN)
    return GeometricGrasp(top.mean(axis=0), rotations.normalize(wrist), list(joint_names),
                          np.asarray(hand_pose, dtype=float).copy())
