"""Pure pieces of one DEFT episode: residual draws, the post-grasp trajectory, phase names."""

from typing import List, Sequence

import numpy as np

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
