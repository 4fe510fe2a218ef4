"""
One fine-tuning run of DEFT (Algorithm 1) without ROS: settings, create or resume, ask -> record.

The episode node drives it: `ask()` gives eps for the next episode, the node executes xi + eps and
collects the reward, `record()` writes the episode to the run directory (atomically) and only then
tells the optimiser, so a process killed at any point resumes from the last finished episode with
the same distribution and random stream.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
import time
from typing import List, Sequence

import numpy as np

from deft_cem.optimizers import ResidualOptimizer, make_optimizer, replay
from deft_cem.runs import EpisodeEntry, RunSettings, RunStore, check_run_id, history, new_run_id

DEFAULT_EPISODES = 30   # N in the paper
DEFAULT_WARMUP = 10     # M in the paper
OPTIMIZERS = ('cem', 'cmaes')
PRIORS = ('affordance', 'heuristic')


class FineTuneError(ValueError):
    """A fine_tune goal that cannot run; `reason` is BAD_GOAL, RUN_EXISTS or RUN_NOT_FOUND."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class FineTuneRequest:
    """The fields of a FineTune goal (0 / empty / -1 mean: the default, or the run's own)."""

    task: str
    object_prompt: str = ''
    episodes: int = 0
    warmup_episodes: int = 0
    elites: int = 0
    initial_std: List[float] = field(default_factory=list)
    reward_source: str = ''
    optimizer: str = ''
    prior: str = ''
    run_id: str = ''
    resume: bool = False
    seed: int = -1


def resolve(req: FineTuneRequest, default_std: Sequence[float], default_elites: int,
            default_reward_source: str, parameter_names: Sequence[str]) -> RunSettings:
    """Fill defaults and validate a request into run settings; FineTuneError(BAD_GOAL) if bad."""
    def bad(msg):
        return FineTuneError('BAD_GOAL', msg)

    if not req.task.strip():
        raise bad('task is empty; say what to do, e.g. "pick up the cup"')
    n = req.episodes or DEFAULT_EPISODES
    m = req.warmup_episodes or min(DEFAULT_WARMUP, n)
    e = req.elites or default_elites
    if n < 1 or m < 1 or m > n:
        raise bad(f'need 1 <= warmup_episodes (M={m}) <= episodes (N={n})')
    if e < 1 or e > n:
        raise bad(f'need 1 <= elites (E={e}) <= episodes (N={n})')
    std = list(req.initial_std) or [float(s) for s in default_std]
    if len(std) != len(parameter_names):
        raise bad(f'initial_std has {len(std)} values; the parameter space has '
                  f'{len(parameter_names)} ({", ".join(parameter_names)})')
    if not all(math.isfinite(s) and s >= 0 for s in std):
        raise bad('initial_std values must be finite and >= 0')
    optimizer = req.optimizer or 'cem'
    if optimizer not in OPTIMIZERS:
        raise bad(f'optimizer {optimizer!r} is not one of {", ".join(OPTIMIZERS)}')
    prior = req.prior or 'affordance'
    if prior not in PRIORS:
        raise bad(f'prior {prior!r} is not one of {", ".join(PRIORS)}')
    seed = int(req.seed) if req.seed >= 0 else int(np.random.SeedSequence().entropy % 2**31)
    return RunSettings(task=req.task, object_prompt=req.object_prompt, episodes=n,
                       warmup_episodes=m, elites=e, initial_std=std,
                       reward_source=req.reward_source or default_reward_source,
                       optimizer=optimizer, prior=prior, seed=seed,
                       parameter_names=list(parameter_names))


def build_optimizer(settings: RunSettings) -> ResidualOptimizer:
    """Build the run's optimiser from its settings (fresh, before replay)."""
    if settings.optimizer == 'cem':
        return make_optimizer('cem', settings.initial_std, warmup=settings.warmup_episodes,
                              elites=settings.elites, seed=settings.seed)
    return make_optimizer(settings.optimizer, settings.initial_std, seed=settings.seed)


class FineTuneRun:
    """A run being executed: its store, settings, optimiser and finished episodes."""

    def __init__(self, store: RunStore, settings: RunSettings, entries: List[EpisodeEntry]):
        self.store, self.settings, self.entries = store, settings, entries
        try:
            self.optimizer = replay(build_optimizer(settings), history(entries))
        except ValueError as exc:
            raise FineTuneError('BAD_GOAL',
                                f'run {store.run_id!r} cannot be resumed: {exc}') from exc

    @staticmethod
    def open(root: Path, req: FineTuneRequest, default_std: Sequence[float],
             default_elites: int, default_reward_source: str,
             parameter_names: Sequence[str]) -> 'FineTuneRun':
        """Create a new run, or resume an existing one (req.resume) after checking its settings."""
        try:
            run_id = check_run_id(req.run_id) if req.run_id else new_run_id()
        except ValueError as exc:
            raise FineTuneError('BAD_GOAL', str(exc)) from exc
        store = RunStore(root, run_id)
        if not req.resume:
            if store.exists:
                raise FineTuneError('RUN_EXISTS', f'run {run_id!r} already exists in {store.dir}; '
                                    'set resume: true to continue it or choose another run_id')
            settings = resolve(req, default_std, default_elites, default_reward_source,
                               parameter_names)
            store.create(settings)
            return FineTuneRun(store, settings, [])
        if not store.exists:
            raise FineTuneError('RUN_NOT_FOUND', f'run {run_id!r} not found under {root}')
        try:
            settings = store.settings()
            entries = store.episodes()
        except (OSError, ValueError) as exc:
            raise FineTuneError('BAD_GOAL', f'run {run_id!r} cannot be read: {exc}') from exc
        asked = _explicit(req, settings)
        conflicts = asked.conflicts(settings)
        if conflicts:
            raise FineTuneError('BAD_GOAL', f'run {run_id!r} was started with other '
                                f'{", ".join(conflicts)}; leave them empty/0 to resume as it was')
        return FineTuneRun(store, settings, entries)

    @property
    def next_episode(self) -> int:
        """Return the index of the next episode (the number of finished ones)."""
        return len(self.entries)

    @property
    def done(self) -> bool:
        """Return whether all N episodes are finished."""
        return self.next_episode >= self.settings.episodes

    @property
    def rewards(self) -> List[float]:
        """Return the rewards of the finished episodes, in order."""
        return [e.reward for e in self.entries]

    @property
    def best_reward(self) -> float:
        """Return the best reward so far (NaN before the first episode)."""
        return max(self.rewards) if self.entries else math.nan

    def ask(self) -> np.ndarray:
        """Return eps for the next episode (the same until it is recorded)."""
        return self.optimizer.ask()

    def record(self, xi: Sequence[float], eps: Sequence[float], reward: float,
               reward_source: str, bag_path: str = '', message: str = '') -> EpisodeEntry:
        """Write the finished episode to the run directory, then tell the optimiser."""
        if self.done:
            raise ValueError(f'run {self.store.run_id!r} already has all its episodes')
        entry = EpisodeEntry(episode=self.next_episode, xi=[float(v) for v in xi],
                             eps=[float(v) for v in eps], reward=float(reward),
                             reward_source=reward_source, stamp=time.time(),
                             bag_path=bag_path, message=message)
        self.store.append(entry)
        self.entries.append(entry)
        self.optimizer.tell(entry.eps, entry.reward)
        return entry


def _explicit(req: FineTuneRequest, stored: RunSettings) -> RunSettings:
    """Return the stored settings overridden by the fields a resume request set explicitly."""
    values = dict(stored.__dict__)
    explicit = {'task': req.task, 'object_prompt': req.object_prompt,
                'episodes': req.episodes, 'warmup_episodes': req.warmup_episodes,
                'elites': req.elites, 'initial_std': list(req.initial_std),
                'reward_source': req.reward_source, 'optimizer': req.optimizer,
                'prior': req.prior, 'seed': req.seed if req.seed >= 0 else None}
    for key, value in explicit.items():
        if value not in ('', 0, [], None):
            values[key] = value
    return RunSettings(**values)


def load_distribution(root: Path, run_id: str):
    """Return (mean, std) of an existing run's current distribution D, or None if no such run."""
    store = RunStore(root, check_run_id(run_id))
    if not store.exists:
        return None
    optimizer = replay(build_optimizer(store.settings()), history(store.episodes()))
    return optimizer.mean, optimizer.std
