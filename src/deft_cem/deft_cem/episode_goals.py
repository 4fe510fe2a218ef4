"""
The pure decisions of the episode node, without rclpy.

Goal validation, the residual of a one-off episode, the prior of a run, and which hand joint
states an episode's bag keeps.

Validation functions return None for a goal that may run, or a message a person can act on;
the node aborts such a goal with BAD_GOAL and that message (it never touches the robot).
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from deft_cem.episode import MODES, REWARD_SOURCES, residual
from deft_cem.runs import RunStore, check_run_id

EMPTY_TASK = 'task is empty; say what to do, e.g. "pick up the cup"'
SCENE_RESETS = ('sim', 'operator', 'none')


@dataclass(frozen=True)
class EpisodeJob:
    """What one episode runs: the task, its reward source, where it is recorded, its prior."""

    task: str
    prompt: str
    source: str
    run_id: str = ''
    index: int = -1               # episode index in the run; -1 = a one-off episode
    seed: Optional[int] = None    # scene reset seed (None = random)
    prior: str = 'affordance'     # affordance | heuristic
    prior_seed: Optional[int] = None


def reward_error(source: str, embedding_ready: bool) -> Optional[str]:
    """Return why a reward source cannot be used on this node, or None."""
    if source not in REWARD_SOURCES:
        return f'reward_source {source!r} is not one of {", ".join(REWARD_SOURCES)}'
    if source == 'embedding' and not embedding_ready:
        return ('reward_source "embedding" needs the parameters embedding_weights and '
                'embedding_goal_image on the episode node')
    return None


def _run_id_error(run_id: str) -> Optional[str]:
    if not run_id:
        return None
    try:
        check_run_id(run_id)
    except ValueError as exc:
        return str(exc)
    return None


def validate_run_episode_goal(goal, default_reward_source: str, embedding_ready: bool,
                              policy_exists: Callable[[str], bool],
                              checkpoint: str = '') -> Optional[str]:
    """Return why a RunEpisode goal is malformed, or None."""
    if not goal.task.strip():
        return EMPTY_TASK
    if goal.mode not in MODES:
        return f'mode {goal.mode!r} is not one of {", ".join(MODES)}'
    error = _run_id_error(goal.run_id)
    if error:
        return error
    if goal.mode == 'policy' and not policy_exists(goal.run_id):
        return (f'mode "policy": no checkpoint {checkpoint!r} for run_id {goal.run_id!r} '
                '(train one with deft_train_policy <run dir>)')
    return reward_error(goal.reward_source or default_reward_source, embedding_ready)


def validate_fine_tune_goal(goal, embedding_ready: bool) -> Optional[str]:
    """Return why a FineTune goal is malformed on its face, or None (the rest: at open)."""
    if not goal.task.strip():
        return EMPTY_TASK
    error = _run_id_error(goal.run_id)
    if error:
        return error
    if goal.resume and not goal.run_id:
        return 'resume: true needs the run_id of the run to continue'
    std = list(goal.initial_std)
    if not all(math.isfinite(s) and s >= 0 for s in std):
        return 'initial_std values must be finite and >= 0'
    if goal.reward_source:
        return reward_error(goal.reward_source, embedding_ready)
    return None


def run_prior(run_root: Path, run_id: str) -> Tuple[str, Optional[int]]:
    """
    Return (prior method, heuristic seed) of a one-off episode.

    An episode naming an existing run uses the run's prior and its seed (one run, one prior);
    otherwise the affordance prior.
    """
    if run_id:
        store = RunStore(run_root, check_run_id(run_id))
        if store.exists:
            settings = store.settings()
            return settings.prior, settings.seed
    return 'affordance', None


def one_off_residual(mode: str, std0: np.ndarray, rng: np.random.Generator,
                     distribution: Optional[Tuple[np.ndarray, np.ndarray]] = None
                     ) -> np.ndarray:
    """
    Return eps of a one-off episode in mode prior | sample | mean (not policy).

    `distribution` is (mean, std) of the goal's run, when it names one: `sample` draws from it
    and `mean` is its mean; without a run, D = N(0, std0^2).
    """
    std0 = np.asarray(std0, dtype=float)
    if mode == 'prior':
        return np.zeros_like(std0)
    mean, std = (np.zeros_like(std0), std0) if distribution is None else distribution
    return np.asarray(mean, dtype=float) + residual(mode, np.asarray(std, dtype=float), rng)


class JointDecimator:
    """Keeps hand joint states of the episode under way, at most `rate_hz` (for its bag)."""

    def __init__(self, rate_hz: float):
        if not rate_hz > 0:
            raise ValueError(f'bag_joint_rate_hz must be > 0, got {rate_hz}')
        self.period = 1.0 / rate_hz
        self.kept: List = []
        self.active = False
        self._last = -math.inf

    def start(self) -> None:
        """Start a new episode: forget the last one's states."""
        self.kept, self.active, self._last = [], True, -math.inf

    def stop(self) -> None:
        """Stop keeping (the motion is over)."""
        self.active = False

    def offer(self, msg) -> bool:
        """Keep `msg` when active and at least one period after the last kept; return kept."""
        if not self.active:
            return False
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if t - self._last < self.period:
            return False
        self._last = t
        self.kept.append(msg)
        return True
