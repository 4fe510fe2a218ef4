"""
The paper's "real-world only" baseline prior: no learned model at all.

Contact = the centre of the object's 3D bounding box (from depth); wrist = a random rotation:
the approach axis (the palm's +z) uniformly distributed over the directions that point down or
sideways (the lower hemisphere, horizontal included: a palm facing up, approaching from below
the table, is the one thing no baseline would try on a robot), turned by a uniformly random
roll about it; hand = the hand config's half-closed pose. Fine-tuning has to find the rest: the
episode node gives a run from this prior a wider initial wrist and hand std
(heuristic_wrist_std, heuristic_hand_std) and the wrist residual reaches pi/2 about each axis,
so every wrist turn and hand closure a task needs is within reach (hard, not impossible).
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
    approach: np.ndarray  # the palm's approach axis (+z), unit, base frame (z <= 0)
    roll: float  # rad, the turn about the approach axis (0: fingers along base +x when top-down)


def random_wrist(rng: np.random.Generator):
    """Return (quaternion x y z w, approach axis, roll) of a random downward or sideways wrist."""
    tilt = float(np.arccos(rng.uniform(0.0, 1.0)))  # from straight down; uniform on the sphere
    heading = float(rng.uniform(-np.pi, np.pi))  # the horizontal direction it leans to
    roll = float(rng.uniform(-np.pi, np.pi))
    # top-down turned by the roll, then leaned by `tilt` towards `heading` (about a horizontal
    # axis): -z goes to (sin(tilt) cos(heading), sin(tilt) sin(heading), -cos(tilt))
    lean = tilt * np.array([np.sin(heading), -np.cos(heading), 0.0])
    q = rotations.multiply(rotations.from_rotvec(lean),
                           rotations.multiply(rotations.from_rotvec([0.0, 0.0, roll]), TOP_DOWN))
    q = rotations.normalize(q)
    return q, rotations.rotate(q, [0.0, 0.0, 1.0]), roll


def heuristic_prior(points: np.ndarray, joint_names: List[str], half_pose: np.ndarray,
                    rng: np.random.Generator) -> HeuristicGrasp:
    """Build the baseline prior from the object's 3D points (N x 3, base frame)."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        raise ValueError('the object has no valid 3D points')
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    q, approach, roll = random_wrist(rng)
    return HeuristicGrasp(centre, q, list(joint_names),
                          np.asarray(half_pose, dtype=float).copy(), approach, roll)
