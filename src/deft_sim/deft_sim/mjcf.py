"""
MJCF conventions shared by the model builders: number lists and MuJoCo's quaternion order.

MuJoCo quaternions are (w, x, y, z); every quaternion in this package's public API is ROS order
(x, y, z, w), converted here at the boundary.
"""

from typing import Sequence

import numpy as np

from deft_common import rotations


def fmt(values: Sequence[float]) -> str:
    """Return numbers as an MJCF attribute value: space-separated, 6 significant digits."""
    return ' '.join(f'{float(v):.6g}' for v in values)


def mj_quat(q_xyzw: Sequence[float]) -> np.ndarray:
    """Return a ROS (x, y, z, w) quaternion as MuJoCo's (w, x, y, z)."""
    q = rotations.normalize(q_xyzw)
    return np.array([q[3], q[0], q[1], q[2]])


def ros_quat(q_wxyz: Sequence[float]) -> np.ndarray:
    """Return a MuJoCo (w, x, y, z) quaternion as ROS (x, y, z, w), normalised."""
    return rotations.normalize([q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]])


def optical_to_mujoco_camera(q_optical_xyzw: Sequence[float]) -> np.ndarray:
    """
    Return the MuJoCo camera quaternion (w, x, y, z) of an optical frame orientation.

    REP 103 optical frames look along +z with y down; MuJoCo cameras look along -z with y up:
    the two differ by a half turn about x.
    """
    flip = rotations.from_rotvec([np.pi, 0.0, 0.0])
    return mj_quat(rotations.multiply(q_optical_xyzw, flip))
