"""Wrist poses for a grasp: pre-grasp, approach, the post-grasp waypoints, workspace checks.

The wrist frame's +z axis is the palm's approach axis (pointing out of the palm to the object).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from deft_common import rotations


@dataclass(frozen=True)
class Pose:
    """A wrist pose in the base frame: position (m) and orientation (quaternion x, y, z, w)."""

    position: np.ndarray
    orientation: np.ndarray

    @staticmethod
    def from_list(values: Sequence[float]) -> 'Pose':
        """From [x, y, z, qx, qy, qz, qw]."""
        t = rotations.Transform.from_list(values)
        return Pose(t.translation, t.rotation)


def interpolate(start: Pose, goal: Pose, max_speed: float, max_angular_speed: float,
                rate_hz: float) -> List[Pose]:
    """Straight line + slerp at the speed limits, one pose per control period (ends at goal)."""
    dist = float(np.linalg.norm(goal.position - start.position))
    angle = rotations.angle_between(start.orientation, goal.orientation)
    duration = max(dist / max_speed, angle / max_angular_speed)
    steps = max(1, int(np.ceil(duration * rate_hz)))
    return [Pose(start.position + (k / steps) * (goal.position - start.position),
                 rotations.slerp(start.orientation, goal.orientation, k / steps))
            for k in range(1, steps + 1)]


def pre_grasp_pose(grasp: Pose, distance: float) -> Pose:
    """Back off from the grasp along the approach axis (the wrist's +z) by `distance`."""
    axis = rotations.to_matrix(grasp.orientation)[:, 2]
    return Pose(grasp.position - distance * axis, grasp.orientation)


def waypoint_pose(grasp: Pose, offset: Sequence[float], orientation: Sequence[float]) -> Pose:
    """Return a post-grasp waypoint: offset in base axes, orientation relative to the grasp."""
    q = np.asarray(orientation, dtype=float)
    rel = np.array([0.0, 0.0, 0.0, 1.0]) if not np.any(q) else rotations.normalize(q)
    return Pose(grasp.position + np.asarray(offset, dtype=float),
                rotations.normalize(rotations.multiply(grasp.orientation, rel)))


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box the wrist must stay in, base frame, metres."""

    low: np.ndarray
    high: np.ndarray

    def check(self, pose: Pose, what: str = 'pose') -> Optional[str]:
        """Return why the pose is out of reach, or None."""
        for i, axis in enumerate('xyz'):
            v, lo, hi = pose.position[i], self.low[i], self.high[i]
            if not np.isfinite(v):
                return f'{what} {axis} = {v} is not a finite position'
            if v < lo:
                return f'{what} {axis} = {v:.3f} m is below the workspace minimum {lo:.3f}'
            if v > hi:
                return f'{what} {axis} = {v:.3f} m is above the workspace maximum {hi:.3f}'
        return None
