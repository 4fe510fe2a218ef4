"""
The pure decisions of the episode node, without rclpy.

Goal validation, opening a fine_tune goal's run, and the prior and residual of a one-off
episode.

Validation functions return None for a goal that may run, or a message a person can act on;
the node aborts such a goal with BAD_GOAL and that message (it never touches the robot).
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from deft_cem.episode import MODES, REWARD_SOURCES, residual
from deft_cem.fine_tune import FineTuneError, FineTuneRequest, FineTuneRun, load_distribution
from deft_common.runs import RunStore, check_run_id
from deft_common.user_text import shown

EMPTY_TASK = 'task is empty; say what to do, e.g. "pick up the cup"'
SCENE_RESETS = ('sim', 'operator', 'none')
MAX_EPISODES = 1000     # N, M and E of a FineTune goal (the paper's N is 30)
MAX_INITIAL_STD = 3.0   # per parameter, in its units: wider than every residual's box
MAX_TEXT = 1000         # characters of a task or object prompt


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


def scene_seed(run_seed: int, episode: int) -> int:
    """
    Return the configuration seed of episode `episode` of a run (sim/reset; 31-bit, >= 0).

    Every episode of a fine_tune run gets a configuration of its own (the twin places a new
    object instance and placement of the train split, as a person would set the scene up a
    little differently each time), drawn from the run's seed and the episode index: a resumed run
    sees the configurations the uninterrupted one would have.
    """
    state = np.random.SeedSequence([int(run_seed) & 0xFFFFFFFF, int(episode)]).generate_state(1)
    return int(state[0]) & 0x7FFFFFFF


def reward_error(source: str, embedding_ready: bool) -> Optional[str]:
    """Return why a reward source cannot be used on this node, or None."""
    if source not in REWARD_SOURCES:
        return f'reward_source {shown(source)} is not one of {", ".join(REWARD_SOURCES)}'
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


def counts_error(episodes: int, warmup: int, elites: int) -> Optional[str]:
    """Return why N, M or E of a FineTune goal lies outside its range, or None (0 = default)."""
    for name, value in (('episodes', episodes), ('warmup_episodes', warmup), ('elites', elites)):
        if not 0 <= value <= MAX_EPISODES:
            return f'{name} is {value}; it must lie in 0..{MAX_EPISODES} (0 = the default)'
    return None


def validate_run_episode_goal(goal, default_reward_source: str, embedding_ready: bool,
                              policy_exists: Callable[[str], bool],
                              checkpoint: str = '') -> Optional[str]:
    """Return why a RunEpisode goal is malformed, or None."""
    if not goal.task.strip():
        return EMPTY_TASK
    for name, value in (('task', goal.task), ('object_prompt', goal.object_prompt)):
        if len(value) > MAX_TEXT:
            return f'{name} is {len(value)} characters long; at most {MAX_TEXT}'
    if goal.mode not in MODES:
        return f'mode {shown(goal.mode)} is not one of {", ".join(MODES)}'
    error = _run_id_error(goal.run_id)
    if error:
        return error
    if goal.mode == 'policy' and not policy_exists(goal.run_id):
        return (f'mode "policy": no checkpoint {checkpoint!r} for run_id {shown(goal.run_id)} '
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
    error = counts_error(goal.episodes, goal.warmup_episodes, goal.elites)
    if error:
        return error
    std = list(goal.initial_std)
    if not all(math.isfinite(s) and 0 < s <= MAX_INITIAL_STD for s in std):
        return (f'initial_std values must be > 0 and <= {MAX_INITIAL_STD:g} (metres, radians, 1 '
                "per parameter), or empty for the node's initial_std")
    for name, value in (('task', goal.task), ('object_prompt', goal.object_prompt)):
        if len(value) > MAX_TEXT:
            return f'{name} is {len(value)} characters long; at most {MAX_TEXT}'
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


def fine_tune_request(goal) -> FineTuneRequest:
    """Return the FineTuneRequest of a FineTune goal (its fields as they came)."""
    return FineTuneRequest(
        task=goal.task, object_prompt=goal.object_prompt, episodes=goal.episodes,
        warmup_episodes=goal.warmup_episodes, elites=goal.elites,
        initial_std=list(goal.initial_std), reward_source=goal.reward_source,
        optimizer=goal.optimizer, prior=goal.prior, run_id=goal.run_id, resume=goal.resume,
        seed=goal.seed)


def open_fine_tune_run(run_root: Path, goal, default_std: Sequence[float], default_elites: int,
                       default_reward_source: str, parameter_names: Sequence[str],
                       embedding_ready: bool) -> Tuple[Optional[FineTuneRun], str, str]:
    """
    Open (create or resume) a FineTune goal's run: (run, '', '') or (None, reason, why).

    reason is BAD_GOAL, RUN_EXISTS or RUN_NOT_FOUND (FineTuneError.reason); a run whose reward
    source this node cannot use (embedding without its parameters) is BAD_GOAL.
    """
    try:
        run = FineTuneRun.open(Path(run_root), fine_tune_request(goal), default_std,
                               default_elites, default_reward_source, parameter_names)
    except FineTuneError as exc:  # open() turns every OS or settings error into one
        return None, exc.reason, str(exc)
    error = reward_error(run.settings.reward_source, embedding_ready)
    if error:
        return None, 'BAD_GOAL', (f'run {run.store.run_id!r} uses reward_source '
                                  f'{run.settings.reward_source!r}: {error}')
    return run, '', ''


def run_distribution(run_root: Path, mode: str,
                     run_id: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """
    Return (mean, std) of the run a one-off episode names, for modes sample and mean.

    None without a run_id, for mode prior (no residual) and for a run_id with no run yet (the
    episode then uses D = N(0, std0^2)).
    """
    if not run_id or mode == 'prior':
        return None
    return load_distribution(Path(run_root), run_id)
