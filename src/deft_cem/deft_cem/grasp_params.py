"""The grasp parameters xi of DEFT and the residuals eps that live in the same space.

xi is a named vector built from the grasp prior (section 1.2 of the paper):

- contact_x, contact_y, contact_z (m): the contact point in the base frame (base_link);
- wrist_rx, wrist_ry, wrist_rz (rad): the wrist orientation as a rotation vector, base frame;
- hand_<joint>, one per hand joint (rad): the hand's grasp targets, in hand-config order;
- tau_scale (1): scale of the post-grasp trajectory's offsets (1 = as demonstrated).

A residual eps is added entry-wise, except for the wrist: the executed orientation is
q = q(xi_wrist) * q(eps_wrist): the residual turns the wrist about its own axes (eps_rz rolls
about the approach axis), well defined near the 180-degree rotation of a top-down grasp.

Bounds (`ParameterSpace.bounds(xi)`, a box on eps around a given xi): the contact offset
eps_contact_* within +-contact_offset_max (m, default 0.08), each wrist residual component
eps_wrist_* within +-wrist_residual_max (rad, default pi/2, about the wrist's own axes: a side
grasp is within reach of a top-down prior and the other way round), the hand joints within
their limits (xi_hand + eps_hand in [lower, upper], rad) and tau_scale within tau_scale_bounds
(default [0, 2]). `command()` clips eps to that box (a Gaussian draw may leave
it; the episode still runs, at the nearest point within bounds) and names the clipped entries in
`GraspCommand.clipped`; the optimiser keeps the eps it drew, the record too.
"""

from dataclasses import dataclass
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

from deft_common import rotations

CONTACT = ('contact_x', 'contact_y', 'contact_z')
WRIST = ('wrist_rx', 'wrist_ry', 'wrist_rz')
TAU = ('tau_scale',)
HAND_PREFIX = 'hand_'
CONTACT_OFFSET_MAX = 0.08      # m, default bound of each contact residual component
WRIST_RESIDUAL_MAX = math.pi / 2  # rad, default bound of each wrist residual component


@dataclass(frozen=True)
class GraspCommand:
    """What the robot executes for one episode: xi + eps as a pose and joint targets."""

    contact_point: np.ndarray        # metres, base frame
    wrist_orientation: np.ndarray    # quaternion x, y, z, w, base frame
    hand_joint_names: List[str]
    hand_joint_positions: np.ndarray  # radians, clipped to the hand's limits
    tau_scale: float
    clipped: Tuple[str, ...] = ()    # names of the eps entries clipped to bounds(xi)


class ParameterSpace:
    """
    Names, bounds and default residual scales of xi for one hand.

    hand_lower / hand_upper: the hand joints' limits (rad); tau_scale_bounds: (min, max) of the
    executed tau_scale; contact_offset_max (m) and wrist_residual_max (rad, <= pi): the largest
    residual of each contact and wrist component. ValueError on bounds that are not finite or
    not ordered.
    """

    def __init__(self, hand_joint_names: Sequence[str], hand_lower: Sequence[float],
                 hand_upper: Sequence[float], tau_scale_bounds=(0.0, 2.0),
                 contact_offset_max: float = CONTACT_OFFSET_MAX,
                 wrist_residual_max: float = WRIST_RESIDUAL_MAX):
        self.hand_joint_names = list(hand_joint_names)
        self.names = list(CONTACT) + list(WRIST) + [
            HAND_PREFIX + j for j in self.hand_joint_names] + list(TAU)
        self.hand_lower = np.asarray(hand_lower, dtype=float)
        self.hand_upper = np.asarray(hand_upper, dtype=float)
        if self.hand_lower.shape != (len(self.hand_joint_names),) or \
                self.hand_upper.shape != self.hand_lower.shape:
            raise ValueError('need one lower and one upper limit per hand joint')
        if not (np.all(np.isfinite(self.hand_lower)) and np.all(np.isfinite(self.hand_upper))
                and np.all(self.hand_lower <= self.hand_upper)):
            raise ValueError('hand joint limits must be finite with lower <= upper, got '
                             f'{self.hand_lower.tolist()} .. {self.hand_upper.tolist()}')
        self.tau_scale_bounds = tuple(float(b) for b in tau_scale_bounds)
        if len(self.tau_scale_bounds) != 2 or not all(map(math.isfinite, self.tau_scale_bounds)) \
                or self.tau_scale_bounds[0] > self.tau_scale_bounds[1]:
            raise ValueError(f'tau_scale_bounds must be (min, max), finite, min <= max, got '
                             f'{tau_scale_bounds}')
        self.contact_offset_max = float(contact_offset_max)
        if not (math.isfinite(self.contact_offset_max) and self.contact_offset_max >= 0):
            raise ValueError(f'contact_offset_max must be finite and >= 0 (m), got '
                             f'{contact_offset_max}')
        self.wrist_residual_max = float(wrist_residual_max)
        if not 0 <= self.wrist_residual_max <= math.pi:
            raise ValueError(f'wrist_residual_max must be within [0, pi] (rad), got '
                             f'{wrist_residual_max}')
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

    def bounds(self, xi: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (lower, upper): the box of residuals eps that command() executes as they are.

        Contact: +-contact_offset_max (m); wrist: +-wrist_residual_max (rad); hand joints and
        tau_scale: their limits minus xi's entries (so xi + eps stays within the limits).
        """
        xi = self.check(xi, 'xi')
        n = len(self.hand_joint_names)
        lower = np.concatenate([[-self.contact_offset_max] * 3, [-self.wrist_residual_max] * 3,
                                self.hand_lower, [self.tau_scale_bounds[0]]])
        upper = np.concatenate([[self.contact_offset_max] * 3, [self.wrist_residual_max] * 3,
                                self.hand_upper, [self.tau_scale_bounds[1]]])
        absolute = slice(6, 7 + n)  # hand joints and tau: limits of xi + eps
        lower[absolute] -= xi[absolute]
        upper[absolute] -= xi[absolute]
        return lower, upper

    def clip(self, xi: Sequence[float], eps: Sequence[float]) -> Tuple[np.ndarray, List[str]]:
        """Return eps clipped to bounds(xi) and the names of the entries that were clipped."""
        eps = self.check(eps, 'eps')
        lower, upper = self.bounds(xi)
        inside = np.clip(eps, lower, upper)
        return inside, [name for name, a, b in zip(self.names, eps, inside) if a != b]

    def command(self, xi: Sequence[float], eps: Sequence[float]) -> GraspCommand:
        """Map xi + eps, eps clipped to bounds(xi), to what the arm and hand execute."""
        xi = self.check(xi, 'xi')
        eps, clipped = self.clip(xi, eps)
        total = xi + eps
        q_prior = rotations.from_rotvec(xi[3:6])
        q = rotations.normalize(rotations.multiply(q_prior, rotations.from_rotvec(eps[3:6])))
        # exactly within the limits, whatever the rounding of (limit - xi) + xi
        hand = np.clip(total[self._hand], self.hand_lower, self.hand_upper)
        tau = float(np.clip(total[-1], *self.tau_scale_bounds))
        return GraspCommand(total[:3].copy(), q, list(self.hand_joint_names), hand, tau,
                            tuple(clipped))
