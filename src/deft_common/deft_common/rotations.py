"""
Rotations of the whole stack, on `scipy.spatial.transform.Rotation`, and rigid transforms.

Conventions (REP 103):

- Quaternions are (x, y, z, w), scalar last: the ROS message order and scipy's default. MuJoCo's
  (w, x, y, z) is converted at its boundary (deft_sim.mujoco_models). q and -q are the same
  rotation; `normalize`, `from_matrix` and `slerp` return the canonical one (w >= 0), the others
  keep the sign their arithmetic gives.
- Rotation vectors are axis * angle (radians); `to_rotvec` and `matrix_to_rotvec` return angles in
  [0, pi].
- `multiply(a, b)` is the Hamilton product: apply b, then a. `turned(q, r)` turns q by r about the
  parent (base) axes, exp(r) * q.
- Matrices are 3x3 with the rotated frame's axes as columns: p_parent = R p_child.

Every function takes one rotation or a batch: quaternions (..., 4), rotation vectors (..., 3),
matrices (..., 3, 3). Zero or non-finite quaternions and improper matrices are ValueErrors.

Code that must stay differentiable for training (torch) has its own copies, in
deft_affordance.torch_geometry; everything else uses this module.
"""

from dataclasses import dataclass
import math

import numpy as np
from scipy.spatial.transform import Rotation


def _rotation(q) -> Rotation:
    """Return the Rotation of quaternions (..., 4); ValueError if one is zero or not finite."""
    q = np.asarray(q, dtype=float)
    if q.ndim == 0 or q.shape[-1] != 4:
        raise ValueError(f'a quaternion needs 4 values (x, y, z, w), got shape {q.shape}')
    if q.ndim == 1:  # the common case, checked without array overhead
        valid = 1e-18 <= float(q @ q) < math.inf  # False for NaN
    else:
        n2 = np.einsum('...i,...i->...', q, q)
        valid = bool(np.all((n2 >= 1e-18) & (n2 < math.inf)))
    if not valid:
        raise ValueError(f'not a valid quaternion: {q.tolist()}')
    return Rotation.from_quat(q)


def _vectors(v, size: int, what: str) -> np.ndarray:
    """Return v as a finite float array (..., size); ValueError naming `what` otherwise."""
    v = np.asarray(v, dtype=float)
    if v.ndim == 0 or v.shape[-1] != size:
        raise ValueError(f'{what} needs {size} values, got shape {v.shape}')
    if not np.all(np.isfinite(v)):
        raise ValueError(f'{what} is not finite: {v.tolist()}')
    return v


def normalize(q) -> np.ndarray:
    """Return the unit quaternion with w >= 0; raise ValueError if zero or not finite."""
    return _rotation(q).as_quat(canonical=True)


def multiply(a, b) -> np.ndarray:
    """Return the Hamilton product a * b (apply b, then a) of unit quaternions."""
    return (_rotation(a) * _rotation(b)).as_quat()


def compose(*quaternions) -> np.ndarray:
    """Return q1 * q2 * ... (the last applied first), normalised with w >= 0; identity if none."""
    out = Rotation.identity()
    for q in quaternions:
        out = out * _rotation(q)
    return out.as_quat(canonical=True)


def conjugate(q) -> np.ndarray:
    """Return the inverse rotation of a unit quaternion."""
    return _rotation(q).inv().as_quat()


def from_rotvec(v) -> np.ndarray:
    """Return the quaternion of a rotation vector (axis * angle, radians)."""
    return Rotation.from_rotvec(_vectors(v, 3, 'a rotation vector')).as_quat()


def to_rotvec(q) -> np.ndarray:
    """Return the rotation vector (axis * angle, angle in [0, pi]) of a quaternion."""
    return _rotation(q).as_rotvec()


def to_matrix(q) -> np.ndarray:
    """Return the 3x3 rotation matrix of a quaternion."""
    return _rotation(q).as_matrix()


def _matrix_rotation(m) -> Rotation:
    m = np.asarray(m, dtype=float)
    if m.ndim < 2 or m.shape[-2:] != (3, 3):
        raise ValueError(f'a rotation matrix is 3x3, got shape {m.shape}')
    if not np.all(np.isfinite(m)):
        raise ValueError(f'rotation matrix is not finite: {m.tolist()}')
    return Rotation.from_matrix(m)  # nearest rotation; ValueError if det <= 0


def from_matrix(m) -> np.ndarray:
    """Return the quaternion (w >= 0) of a 3x3 rotation matrix (of the nearest rotation)."""
    return _matrix_rotation(m).as_quat(canonical=True)


def rotvec_to_matrix(v) -> np.ndarray:
    """Return rotation matrices (..., 3, 3) of rotation vectors (..., 3) (Rodrigues)."""
    return Rotation.from_rotvec(_vectors(v, 3, 'a rotation vector')).as_matrix()


def matrix_to_rotvec(m) -> np.ndarray:
    """Return the rotation vectors (angle in [0, pi]) of rotation matrices (..., 3, 3)."""
    return _matrix_rotation(m).as_rotvec()


def rpy_to_matrix(rpy) -> np.ndarray:
    """Return the rotation of URDF roll, pitch, yaw angles: Rz(yaw) Ry(pitch) Rx(roll)."""
    return Rotation.from_euler('xyz', _vectors(rpy, 3, 'roll, pitch, yaw')).as_matrix()


def rotate(q, v) -> np.ndarray:
    """Rotate vectors v (..., 3) by q (one quaternion, or a batch broadcasting with v)."""
    return np.einsum('...ij,...j->...i', to_matrix(q), np.asarray(v, dtype=float))


def turned(q, rotvec) -> np.ndarray:
    """Return q turned by a rotation vector about the parent (base) axes: exp(r) * q, w >= 0."""
    return (Rotation.from_rotvec(_vectors(rotvec, 3, 'a rotation vector'))
            * _rotation(q)).as_quat(canonical=True)


def angle_between(a, b):
    """Return the geodesic angle between two orientations, radians in [0, pi]."""
    angle = (_rotation(a).inv() * _rotation(b)).magnitude()
    return float(angle) if np.ndim(angle) == 0 else angle


def slerp(a, b, t: float) -> np.ndarray:
    """Return the spherical interpolation from a (t = 0) to b (t = 1) along the short arc."""
    ra = _rotation(a)
    step = (ra.inv() * _rotation(b)).as_rotvec()  # angle <= pi: the short arc
    return (ra * Rotation.from_rotvec(float(t) * step)).as_quat(canonical=True)


@dataclass(frozen=True)
class Transform:
    """Rigid transform: maps points of a child frame into its parent frame (p_parent = R p + t)."""

    translation: np.ndarray
    rotation: np.ndarray  # quaternion x, y, z, w

    @staticmethod
    def from_list(values) -> 'Transform':
        """From [x, y, z, qx, qy, qz, qw] (metres, unit quaternion), the parameter layout."""
        values = [float(v) for v in values]
        if len(values) != 7:
            raise ValueError(f'a transform needs 7 values (x y z qx qy qz qw), got {len(values)}')
        return Transform(np.array(values[:3]), normalize(values[3:]))

    def apply(self, points) -> np.ndarray:
        """Map points (..., 3) from the child frame to the parent frame."""
        return rotate(self.rotation, points) + self.translation

    def inverse(self) -> 'Transform':
        """Transform from the parent frame to the child frame."""
        inv = conjugate(self.rotation)
        return Transform(-rotate(inv, self.translation), inv)
