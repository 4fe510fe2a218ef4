"""Quaternions (x, y, z, w: the ROS order), rotation vectors, matrices and rigid transforms."""

from dataclasses import dataclass

import numpy as np


def normalize(q) -> np.ndarray:
    """Return the unit quaternion with w >= 0; raise ValueError if zero or not finite."""
    q = np.asarray(q, dtype=float)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f'not a valid quaternion: {q.tolist()}')
    q = q / n
    return -q if q[3] < 0 else q


def multiply(a, b) -> np.ndarray:
    """Hamilton product a * b (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def conjugate(q) -> np.ndarray:
    """Inverse rotation of a unit quaternion."""
    return np.array([-q[0], -q[1], -q[2], q[3]], dtype=float)


def from_rotvec(v) -> np.ndarray:
    """Quaternion of a rotation vector (axis * angle, radians)."""
    v = np.asarray(v, dtype=float)
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.array([0.5 * v[0], 0.5 * v[1], 0.5 * v[2], 1.0]) / np.sqrt(1 + 0.25 * angle**2)
    axis = v / angle
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


def to_rotvec(q) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of a quaternion."""
    q = normalize(q)
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return 2.0 * q[:3]
    angle = 2.0 * np.arctan2(s, q[3])
    return q[:3] / s * angle


def to_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of a quaternion."""
    x, y, z, w = normalize(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def from_matrix(m) -> np.ndarray:
    """Quaternion of a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(m, dtype=float)
    t = np.trace(m)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1e-12, 1.0 + m[i, i] - m[j, j] - m[k, k]))
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    return normalize(q)


def rotate(q, v) -> np.ndarray:
    """Rotate vectors v (..., 3) by q."""
    return np.asarray(v, dtype=float) @ to_matrix(q).T


def angle_between(a, b) -> float:
    """Geodesic angle between two orientations, radians in [0, pi]."""
    d = abs(float(np.dot(normalize(a), normalize(b))))
    return 2.0 * float(np.arccos(min(1.0, d)))


def slerp(a, b, t: float) -> np.ndarray:
    """Spherical interpolation from a (t = 0) to b (t = 1) along the short arc."""
    a, b = normalize(a), normalize(b)
    d = float(np.dot(a, b))
    if d < 0:
        b, d = -b, -d
    if d > 0.9995:
        return normalize(a + t * (b - a))
    theta = np.arccos(d)
    return normalize((np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta))


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
