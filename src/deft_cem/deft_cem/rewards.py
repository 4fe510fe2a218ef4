"""The operator's reward: one episode waits, the `submit_reward` service delivers (thread-safe)."""

from dataclasses import dataclass
import math
import threading
from typing import Optional, Tuple


@dataclass(frozen=True)
class OperatorVerdict:
    """What the operator said about an episode (reward is NaN when discarded)."""

    reward: float
    discard: bool


class OperatorRewardBox:
    """Holds at most one episode waiting for its operator score."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: Optional[Tuple[str, int]] = None
        self._verdict: Optional[OperatorVerdict] = None

    @property
    def waiting_for(self) -> Optional[Tuple[str, int]]:
        """Return (run_id, episode) of the episode waiting for a score, or None."""
        with self._lock:
            return self._waiting

    def expect(self, run_id: str, episode: int) -> None:
        """Open the box for one episode (replacing any earlier one)."""
        with self._lock:
            self._waiting = (run_id, episode)
            self._verdict = None

    def close(self) -> None:
        """Stop waiting (episode finished or cancelled); later submissions are refused."""
        with self._lock:
            self._waiting = None
            self._verdict = None

    def poll(self) -> Optional[OperatorVerdict]:
        """Return the verdict once the operator gave one, else None."""
        with self._lock:
            return self._verdict

    def submit(self, run_id: str, episode: int, reward: float, discard: bool) -> Tuple[bool, str]:
        """Deliver a score; return (accepted, message a person can act on)."""
        with self._lock:
            if self._waiting is None:
                return False, 'no episode is waiting for a reward'
            want_run, want_episode = self._waiting
            if run_id != want_run:
                return False, (f'run {run_id!r} is not waiting; the episode waiting is '
                               f'{want_episode} of run {want_run!r}')
            if episode not in (-1, want_episode):
                return False, (f'episode {episode} is not waiting; episode {want_episode} is '
                               '(use -1 for the episode waiting)')
            if not discard and (not math.isfinite(reward) or not 0.0 <= reward <= 1.0):
                return False, f'reward must be within [0, 1], got {reward}'
            if self._verdict is not None:
                return False, f'episode {want_episode} already has a reward'
            self._verdict = OperatorVerdict(float('nan') if discard else float(reward), discard)
            what = 'discarded' if discard else f'reward {reward:.3f}'
            return True, f'episode {want_episode} of run {want_run!r}: {what}'
