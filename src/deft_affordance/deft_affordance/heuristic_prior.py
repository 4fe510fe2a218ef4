"""
The paper's "real-world only" baseline prior: no learned model at all.

Contact = the centre of the object's 3D bounding box (from depth), wrist = a top-down grasp turned
by a random angle about the vertical (a uniformly random yaw: a fully random 3D rotation would
point the palm away from the table half of the time, which no baseline would try on a robot),
hand = the hand config's half-closed pose. Fine-tuning then has to find the rest.
"""

from dataclasses import dataclass
from typing import List

import numpy as np

from deft_common import rotations

TOP_DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # palm +z (approach axis) pointing down


@dataclass(frozen=True)
class HeuristicGrasp:
    """The baseline's grasp parameters, in the base frame."""

    contact_point: np.ndarray
    wrist_orientation: np.ndarray
    hand_joint_names: List[str]
    hand_joint_positions: np.ndarray
    yaw: float


def heuristic_prior(points: np.ndarray, joint_names: List[str], half_pose: np.ndarray,
                    rng: np.random.Generator) -> HeuristicGrasp:
    """Build the baseline prior from the object's 3D points (N x 3, base frame)."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        raise ValueError('the object has no valid 3D points')
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    yaw = float(rng.uniform(-np.pi, np.pi))
    wrist = rotations.multiply(rotations.from_rotvec([0.0, 0.0, yaw]), TOP_DOWN)
    return HeuristicGrasp(centre, rotations.normalize(wrist), list(joint_names),
                          np.asarray(half_pose, dtype=float).copy(), yaw)
