"""
One fine-tuning run of DEFT (Algorithm 1) without ROS: settings, create or resume, ask -> record.

The episode node drives it: `ask()` gives eps for the next episode, the node executes xi + eps and
collects the reward, `record()` tells a copy of the optimiser and writes the episode together with
that copy's state to the run directory in one atomic write; only then does the run move on. A
process killed at any point resumes from the last finished episode with the same distribution and
random stream: from the stored state, cross-checked by replaying the recorded episodes (a
disagreement, e.g. after a numpy or cmaes upgrade changed a random stream, is a warning in
`FineTuneRun.warnings` and the log; the stored state wins). Runs recorded before states were
stored resume by replay alone.

Settings are validated whether they come from a new goal or from a stored run: N >= 1,
1 <= M <= N, 1 <= E <= M (the first refit, after the M warm-up episodes, keeps the E best of
them; E > M would refit to all of them, no selection, so it is refused; an E left to its default
is lowered to M), initial_std one finite value >= 0 per parameter, and the optimizer, prior and
reward source among their choices.
"""

import copy
from dataclasses import dataclass, field
import logging
import math
from pathlib import Path
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deft_cem.episode import REWARD_SOURCES
from deft_cem.optimizers import ResidualOptimizer, difference, make_optimizer, replay
from deft_common.runs import EpisodeEntry, RunSettings, RunStore, check_run_id, history, new_run_id
from deft_common.user_text import shown

DEFAULT_EPISODES = 30   # N in the paper
DEFAULT_WARMUP = 10     # M in the paper
OPTIMIZERS = ('cem', 'cmaes')
PRIORS = ('affordance', 'heuristic')
LOG = logging.getLogger(__name__)


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
    if not req.task.strip():
        raise FineTuneError('BAD_GOAL', 'task is empty; say what to do, e.g. "pick up the cup"')
    n = req.episodes or DEFAULT_EPISODES
    m = req.warmup_episodes or min(DEFAULT_WARMUP, n)
    e = req.elites or min(default_elites, m)
    seed = int(req.seed) if req.seed >= 0 else int(np.random.SeedSequence().entropy % 2**31)
    settings = RunSettings(task=req.task, object_prompt=req.object_prompt, episodes=n,
                           warmup_episodes=m, elites=e,
                           initial_std=list(req.initial_std) or [float(s) for s in default_std],
                           reward_source=req.reward_source or default_reward_source,
                           optimizer=req.optimizer or 'cem', prior=req.prior or 'affordance',
                           seed=seed, parameter_names=list(parameter_names))
    check_settings(settings, parameter_names)
    return settings


def check_settings(s: RunSettings, parameter_names: Sequence[str], what: str = '') -> None:
    """Raise FineTuneError(BAD_GOAL) unless the settings make a run this node can execute."""
    def bad(msg):
        return FineTuneError('BAD_GOAL', what + msg)

    n, m, e = s.episodes, s.warmup_episodes, s.elites
    if not all(isinstance(v, int) for v in (n, m, e)):
        raise bad(f'episodes, warmup_episodes and elites must be integers, got {n}, {m}, {e}')
    if n < 1 or m < 1 or m > n:
        raise bad(f'need 1 <= warmup_episodes (M={m}) <= episodes (N={n})')
    if e < 1 or e > n:
        raise bad(f'need 1 <= elites (E={e}) <= episodes (N={n})')
    if e > m:
        raise bad(f'elites (E={e}) must be <= warmup_episodes (M={m}): the first refit, after '
                  f'the M warm-up episodes, keeps the E best of them; lower E or raise M')
    if list(s.parameter_names) != list(parameter_names):
        raise bad(f'the run has the parameters {", ".join(s.parameter_names)}; this node has '
                  f'{", ".join(parameter_names)} (another hand configuration?)')
    if len(s.initial_std) != len(parameter_names):
        raise bad(f'initial_std has {len(s.initial_std)} values; the parameter space has '
                  f'{len(parameter_names)} ({", ".join(parameter_names)})')
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
               for v in s.initial_std):
        raise bad('initial_std values must be finite and >= 0')
    for name, value, choices in (('optimizer', s.optimizer, OPTIMIZERS),
                                 ('prior', s.prior, PRIORS),
                                 ('reward_source', s.reward_source, REWARD_SOURCES)):
        if value not in choices:
            raise bad(f'{name} {shown(value)} is not one of {", ".join(choices)}')


def build_optimizer(settings: RunSettings) -> ResidualOptimizer:
    """Build the run's optimiser from its settings (fresh, before replay)."""
    if settings.optimizer == 'cem':
        return make_optimizer('cem', settings.initial_std, warmup=settings.warmup_episodes,
                              elites=settings.elites, seed=settings.seed)
    return make_optimizer(settings.optimizer, settings.initial_std, seed=settings.seed)


def restore_optimizer(settings: RunSettings, entries: Sequence[EpisodeEntry]
                      ) -> Tuple[ResidualOptimizer, List[str]]:
    """
    Return the run's optimiser after its finished episodes, and warnings about how it was restored.

    From the state stored with the last episode, cross-checked by replay (a disagreement is a
    warning; the stored state wins). Without a stored state (older runs), or with one this
    version cannot load (a warning), by replay. ValueError if neither works.
    """
    told = history(entries)
    state = entries[-1].optimizer_state if entries else None
    if state is None:
        return replay(build_optimizer(settings), told), []
    last = len(entries) - 1
    try:
        optimizer = build_optimizer(settings).load_state_dict(state, told)
    except ValueError as exc:
        try:
            optimizer = replay(build_optimizer(settings), told)
        except ValueError as replay_exc:
            raise ValueError(f'the optimiser state stored with episode {last} cannot be loaded '
                             f'({exc}) and replay fails: {replay_exc}') from exc
        return optimizer, [f'the optimiser state stored with episode {last} cannot be loaded '
                           f'({exc}); rebuilt it by replaying the {len(entries)} episodes']
    try:
        disagreement = difference(optimizer, replay(build_optimizer(settings), told))
    except ValueError as exc:
        disagreement = str(exc)
    if not disagreement:
        return optimizer, []
    return optimizer, [f'replaying the {len(entries)} recorded episodes disagrees with the '
                       f'optimiser state stored with episode {last} ({disagreement}); resuming '
                       'from the stored state (did a numpy or cmaes upgrade change a random '
                       'stream?)']


class FineTuneRun:
    """A run being executed: its store, settings, optimiser and finished episodes."""

    def __init__(self, store: RunStore, settings: RunSettings, entries: List[EpisodeEntry]):
        self.store, self.settings, self.entries = store, settings, entries
        try:
            self.optimizer, self.warnings = restore_optimizer(settings, entries)
            _ = self.optimizer.std  # fails now, naming the cmaes version, if it is unreadable
        except (ValueError, RuntimeError) as exc:
            raise FineTuneError('BAD_GOAL',
                                f'run {store.run_id!r} cannot be resumed: {exc}') from exc
        for warning in self.warnings:
            LOG.warning('run %r: %s', store.run_id, warning)

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
        try:
            return FineTuneRun._open(store, req, default_std, default_elites,
                                     default_reward_source, parameter_names)
        except OSError as exc:
            raise FineTuneError('BAD_GOAL', f'run {run_id!r} cannot be used in {store.dir} (run '
                                f'root {root}): {type(exc).__name__}: {exc}') from exc

    @staticmethod
    def _open(store: RunStore, req: FineTuneRequest, default_std: Sequence[float],
              default_elites: int, default_reward_source: str,
              parameter_names: Sequence[str]) -> 'FineTuneRun':
        run_id = store.run_id
        if not req.resume:
            if store.exists:
                raise FineTuneError('RUN_EXISTS', f'run {run_id!r} already exists in {store.dir}; '
                                    'set resume: true to continue it or choose another run_id')
            settings = resolve(req, default_std, default_elites, default_reward_source,
                               parameter_names)
            store.create(settings)
            return FineTuneRun(store, settings, [])
        if not store.exists:
            raise FineTuneError('RUN_NOT_FOUND',
                                f'run {run_id!r} not found under {store.dir.parent}')
        try:
            settings = store.settings()
            entries = store.episodes()
        except ValueError as exc:
            raise FineTuneError('BAD_GOAL', f'run {run_id!r} cannot be read: {exc}') from exc
        asked = _explicit(req, settings)
        check_settings(asked, parameter_names, f'run {run_id!r} cannot be resumed: ')
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
               reward_source: str, bag_path: str = '', message: str = '',
               task_success: Optional[bool] = None) -> EpisodeEntry:
        """
        Write the finished episode with the optimiser state after it, then move on to it.

        The eps must be the one ask() returned. If the write fails (OSError), nothing changed:
        the run still waits for this episode.
        """
        if self.done:
            raise ValueError(f'run {self.store.run_id!r} already has all its episodes')
        eps = [float(v) for v in eps]
        told = copy.deepcopy(self.optimizer)
        told.tell(eps, float(reward))
        entry = EpisodeEntry(episode=self.next_episode, xi=[float(v) for v in xi], eps=eps,
                             reward=float(reward), reward_source=reward_source,
                             stamp=time.time(), bag_path=bag_path, message=message,
                             optimizer_state=told.state_dict(),
                             task_success=None if task_success is None else bool(task_success))
        self.store.append(entry)
        self.entries.append(entry)
        self.optimizer = told
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
    optimizer, warnings = restore_optimizer(store.settings(), store.episodes())
    for warning in warnings:
        LOG.warning('run %r: %s', run_id, warning)
    return optimizer.mean, optimizer.std
