"""Pure pieces of one DEFT episode: residual draws, the post-grasp trajectory, phase names."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import yaml

from deft_common import rotations

# RunEpisode feedback phases, in the order an episode goes through them.
PHASES = ('perceive', 'predict', 'approach', 'grasp', 'post_grasp', 'reward', 'reset')
# Stages of arm/execute_grasp feedback -> episode phase.
ARM_STAGE_PHASE = {'pre_grasp': 'approach', 'approach': 'approach', 'grasp': 'grasp',
                   'post_grasp': 'post_grasp', 'retreat': 'post_grasp'}
MODES = ('prior', 'sample', 'mean', 'policy')
REWARD_SOURCES = ('operator', 'embedding', 'sim')


def residual(mode: str, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """
    Draw the residual eps for a one-off episode under the initial distribution D = N(0, std^2).

    prior: eps = 0 (the affordance prior alone); mean: the mean of D, also 0 before any
    fine-tuning; sample: one draw from D.
    """
    std = np.asarray(std, dtype=float)
    if mode in ('prior', 'mean'):
        return np.zeros_like(std)
    if mode == 'sample':
        return rng.normal(0.0, 1.0, size=std.shape) * std
    raise ValueError(f'mode {mode!r} has no residual here; expected prior, sample or mean')


def parse_waypoints(flat: Sequence[float]) -> np.ndarray:
    """Turn [dx0, dy0, dz0, dx1, ...] (metres) into an (N, 3) array; ValueError if malformed."""
    values = np.asarray(list(flat), dtype=float)
    if values.size % 3 or not np.all(np.isfinite(values)):
        raise ValueError('post_grasp_waypoints needs finite x, y, z triples (metres); '
                         f'got {values.size} values')
    return values.reshape(-1, 3)


def scaled_waypoints(tau: np.ndarray, scale: float) -> List[np.ndarray]:
    """Scale the demonstrated post-grasp offsets (tau) by the tau_scale parameter."""
    return [np.asarray(w, dtype=float) * float(scale) for w in tau]


@dataclass(frozen=True)
class Demonstration:
    """
    The post-grasp trajectory tau of one human demonstration.

    waypoints: (N, 3) wrist offsets from the grasp position, metres, base axes.
    rotations: (N, 3) rotation vectors, rad, base axes: the wrist at waypoint i is turned by
    from_rotvec(rotations[i]) from its grasp orientation (zeros: it keeps the grasp
    orientation). A pour turns the wrist; a lift does not.
    """

    waypoints: np.ndarray
    rotations: np.ndarray

    def scaled(self, scale: float) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Return (offset, rotation vector) per waypoint, both scaled by tau_scale."""
        return [(w * float(scale), r * float(scale))
                for w, r in zip(self.waypoints, self.rotations)]


def parse_demonstration(waypoints: Sequence[float],
                        turns: Sequence[float] = ()) -> Demonstration:
    """Build a Demonstration from flat x y z triples (m) and rotation triples (rad, or empty)."""
    tau = parse_waypoints(waypoints)
    values = np.asarray(list(turns), dtype=float)
    if values.size == 0:
        return Demonstration(tau, np.zeros_like(tau))
    if values.size != tau.size or not np.all(np.isfinite(values)):
        raise ValueError(f'post_grasp_rotations needs one finite rotation vector (rad, base axes) '
                         f'per waypoint: {len(tau)} x 3 values, got {values.size}')
    return Demonstration(tau, values.reshape(-1, 3))


def waypoint_turn(grasp_orientation: Sequence[float], rotvec: Sequence[float]) -> np.ndarray:
    """
    Return the arm's waypoint orientation for a turn given in base axes.

    arm/execute_grasp takes a waypoint orientation relative to the grasp (wrist frame,
    q_waypoint = q_grasp * rel); a turn r in base axes is q_waypoint = R(r) * q_grasp, so
    rel = q_grasp^-1 * R(r) * q_grasp (x y z w).
    """
    q = rotations.normalize(grasp_orientation)
    return rotations.normalize(rotations.multiply(
        rotations.conjugate(q), rotations.multiply(rotations.from_rotvec(rotvec), q)))


def load_demonstrations(path) -> Dict[str, Demonstration]:
    """
    Read a demonstrations YAML: task text -> {waypoints: [x y z ...], rotations: [...]}.

    ValueError naming the file and the task for anything malformed; OSError if unreadable.
    """
    path = Path(path).expanduser()
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping task text -> demonstration')
    out = {}
    for task, entry in data.items():
        if not isinstance(entry, dict) or 'waypoints' not in entry:
            raise ValueError(f'{path}: task {task!r} needs a mapping with waypoints')
        unknown = set(entry) - {'waypoints', 'rotations', 'note'}
        if unknown:
            raise ValueError(f'{path}: task {task!r} has unknown keys {sorted(unknown)}')
        try:
            out[str(task).strip().lower()] = parse_demonstration(
                entry['waypoints'], entry.get('rotations') or ())
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path}: task {task!r}: {exc}') from exc
    return out
