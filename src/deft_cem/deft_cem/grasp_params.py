"""The grasp parameters xi of DEFT and the residuals eps that live in the same space.

xi is a named vector built from the grasp prior (section 1.2 of the paper):

- contact_x, contact_y, contact_z (m): the contact point in the base frame (base_link);
- wrist_rx, wrist_ry, wrist_rz (rad): the wrist orientation as a rotation vector, base frame;
- hand_<joint>, one per hand joint (rad): the hand's grasp targets, in hand-config order;
- tau_scale (1): scale of the post-grasp trajectory's offsets (1 = as demonstrated).

A residual eps is added entry-wise, except for the wrist: the executed orientation is
q = q(xi_wrist) * q(eps_wrist): the residual turns the wrist about its own axes (eps_rz rolls
about the approach axis), well defined near the 180-degree rotation of a top-down grasp.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from deft_common import rotations

CONTACT = ('contact_x', 'contact_y', 'contact_z')
WRIST = ('wrist_rx', 'wrist_ry', 'wrist_rz')
TAU = ('tau_scale',)
HAND_PREFIX = 'hand_'


@dataclass(frozen=True)
class GraspCommand:
    """What the robot executes for one episode: xi + eps as a pose and joint targets."""

    contact_point: np.ndarray        # metres, base frame
    wrist_orientation: np.ndarray    # quaternion x, y, z, w, base frame
    hand_joint_names: List[str]
    hand_joint_positions: np.ndarray  # radians, clipped to the hand's limits
    tau_scale: float


class ParameterSpace:
    """Names, bounds and default residual scales of xi for one hand."""

    def __init__(self, hand_joint_names: Sequence[str], hand_lower: Sequence[float],
                 hand_upper: Sequence[float], tau_scale_bounds=(0.0, 2.0)):
        self.hand_joint_names = list(hand_joint_names)
        self.names = list(CONTACT) + list(WRIST) + [
            HAND_PREFIX + j for j in self.hand_joint_names] + list(TAU)
        self.hand_lower = np.asarray(hand_lower, dtype=float)
        self.hand_upper = np.asarray(hand_upper, dtype=float)
        if self.hand_lower.shape != (len(self.hand_joint_names),) or \
                self.hand_upper.shape != self.hand_lower.shape:
            raise ValueError('need one lower and one upper limit per hand joint')
        self.tau_scale_bounds = tuple(float(b) for b in tau_scale_bounds)
        self._hand = slice(6, 6 + len(self.hand_joint_names))

    @property
    def size(self) -> int:
        """Return the number of entries of xi."""
        return len(self.names)

    def default_std(self, contact: float, wrist: float, hand: float, tau: float) -> np.ndarray:
        """Return a per-entry std from one value per group (m, rad, rad, 1)."""
        values = [contact] * 3 + [wrist] * 3 + [hand] * len(self.hand_joint_names) + [tau]
        std = np.asarray(values, dtype=float)
        if np.any(~np.isfinite(std)) or np.any(std < 0):
            raise ValueError(f'standard deviations must be finite and >= 0, got {values}')
        return std

    def xi(self, contact_point: Sequence[float], wrist_orientation: Sequence[float],
           hand_joint_names: Sequence[str], hand_joint_positions: Sequence[float],
           tau_scale: float = 1.0) -> np.ndarray:
        """Build xi from a grasp prior; hand joints matched by name (a missing one: ValueError)."""
        if len(hand_joint_names) != len(hand_joint_positions):
            raise ValueError('prior has a different number of hand joint names and positions')
        by_name: Dict[str, float] = dict(zip(hand_joint_names, hand_joint_positions))
        missing = [j for j in self.hand_joint_names if j not in by_name]
        if missing:
            raise ValueError(f'prior has no target for hand joints {missing}')
        hand = [float(by_name[j]) for j in self.hand_joint_names]
        rotvec = rotations.to_rotvec(wrist_orientation)
        xi = np.concatenate([np.asarray(contact_point, dtype=float), rotvec, hand, [tau_scale]])
        if not np.all(np.isfinite(xi)):
            raise ValueError(f'prior parameters are not finite: {xi.tolist()}')
        return xi

    def check(self, vector: Sequence[float], what: str = 'vector') -> np.ndarray:
        """Return the vector as an array; ValueError unless finite with one entry per name."""
        v = np.asarray(vector, dtype=float)
        if v.shape != (self.size,):
            raise ValueError(f'{what} has {v.size} entries; the parameter space has {self.size}')
        if not np.all(np.isfinite(v)):
            raise ValueError(f'{what} has non-finite entries')
        return v

    def command(self, xi: Sequence[float], eps: Sequence[float]) -> GraspCommand:
        """Map xi + eps to what the arm and hand execute (hand and tau clipped to bounds)."""
        xi, eps = self.check(xi, 'xi'), self.check(eps, 'eps')
        total = xi + eps
        q_prior = rotations.from_rotvec(xi[3:6])
        q = rotations.normalize(rotations.multiply(q_prior, rotations.from_rotvec(eps[3:6])))
        hand = np.clip(total[self._hand], self.hand_lower, self.hand_upper)
        tau = float(np.clip(total[-1], *self.tau_scale_bounds))
        return GraspCommand(total[:3].copy(), q, list(self.hand_joint_names), hand, tau)
