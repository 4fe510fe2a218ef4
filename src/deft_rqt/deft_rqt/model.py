"""
What the panel shows, without Qt or rclpy: the choices of the goal fields, the run's progress.

The panel's widgets only draw a RunProgress; tests and the screenshot writer can fill one alone.
"""

from dataclasses import dataclass, field
import math
from typing import List, Optional, Sequence

from deft_cem.episode import MODES, PHASES, REWARD_SOURCES
from deft_cem.fine_tune import OPTIMIZERS, PRIORS

# '' first: the episode node's own default (its default_reward_source parameter).
REWARD_CHOICES = ('',) + REWARD_SOURCES
MODE_CHOICES = MODES
OPTIMIZER_CHOICES = OPTIMIZERS
PRIOR_CHOICES = PRIORS
EPISODE_PHASES = PHASES
DEFAULT_ELITES = 5  # the episode node's `elites` parameter default, for a goal that leaves E at 0


def known_tasks() -> List[str]:
    """
    Return the task texts of the installed demonstrations file, sorted ([] when unreadable).

    The episode node does not publish the tasks it knows; the shipped file (what its
    `demonstrations` parameter reads by default) is the best guess, and the task field stays free
    text for a node configured with another file.
    """
    try:
        from deft_cem.episode import load_demonstrations
        from deft_cem.episode_config import demonstrations_file
        return sorted(load_demonstrations(demonstrations_file('')))
    except Exception:  # noqa: BLE001 - no share dir, no file, malformed: no suggestions
        return []


def elite_indices(rewards: Sequence[float], elites: int) -> List[int]:
    """Return the indices of the `elites` best finite rewards (ties: the earlier episode)."""
    ranked = sorted((i for i, r in enumerate(rewards) if math.isfinite(r)),
                    key=lambda i: (-rewards[i], i))
    return sorted(ranked[:max(0, elites)])


@dataclass
class RunProgress:
    """Progress of the goal under way, as the feedback and the result tell it."""

    kind: str = ''            # 'fine_tune' | 'run_episode' | ''
    run_id: str = ''
    episodes: int = 0         # N (1 for run_episode)
    episode: int = 0          # k, from 1: the episode under way, or the last finished one
    phase: str = ''
    detail: str = ''
    rewards: List[float] = field(default_factory=list)
    best_reward: float = math.nan
    std: List[float] = field(default_factory=list)
    elites: int = DEFAULT_ELITES
    status: str = ''          # '' while running, then succeeded | aborted | canceled | rejected
    message: str = ''

    def on_fine_tune_feedback(self, fb) -> None:
        """Take a FineTune feedback: a finished episode adds its reward (warmup | refit)."""
        self.episodes, self.phase = fb.episodes, fb.phase
        self.best_reward, self.std = fb.best_reward, list(fb.std)
        if fb.phase in ('warmup', 'refit'):
            self.episode = fb.episode
            while len(self.rewards) < fb.episode:
                self.rewards.append(math.nan)
            if fb.episode >= 1:
                self.rewards[fb.episode - 1] = fb.last_reward
        else:  # an episode's phase: fb.episode is the 0-based index of the one under way
            self.episode = fb.episode + 1

    def on_run_episode_feedback(self, fb) -> None:
        """Take a RunEpisode feedback (phase and its detail)."""
        self.phase, self.detail = fb.phase, fb.detail

    def finish(self, status: str, result) -> None:
        """Take the result: its rewards (fine_tune) or reward (run_episode) and its message."""
        self.status, self.message = status, result.message if result is not None else ''
        if result is None:
            return
        if self.kind == 'fine_tune':
            self.rewards = list(result.rewards)
            self.best_reward = result.best_reward
            self.episode = len(self.rewards)
        elif result.success:
            self.rewards = [result.reward]
            self.best_reward = result.reward

    def line(self) -> str:
        """Return the one-line summary under the curve."""
        if not self.kind:
            return 'no goal sent yet'
        parts = [f'{self.kind} {self.run_id or "(new run)"}']
        if self.kind == 'fine_tune':
            parts.append(f'episode {self.episode} of {self.episodes}')
        if self.phase and not self.status:
            parts.append(f'phase {self.phase}' + (f' ({self.detail})' if self.detail else ''))
        if self.rewards and math.isfinite(self.rewards[-1]):
            parts.append(f'last reward {self.rewards[-1]:.3f}')
        if math.isfinite(self.best_reward):
            parts.append(f'best {self.best_reward:.3f}')
        if self.std:
            parts.append(f'std mean {sum(self.std) / len(self.std):.4f}')
        if self.status:
            parts.append(self.status + (f': {self.message}' if self.message else ''))
        return ' | '.join(parts)


def parse_floats(text: str) -> Optional[List[float]]:
    """Parse 'a, b c' into floats; [] for blank; None if a value is not a number."""
    items = text.replace(',', ' ').split()
    try:
        return [float(x) for x in items]
    except ValueError:
        return None
