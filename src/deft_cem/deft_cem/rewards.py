"""
The operator's part of an episode, thread-safe: the score and the scene reset.

One episode at a time waits for its score (`OperatorRewardBox`, delivered by `submit_reward`),
then, with `scene_reset: operator`, for the operator to put the scene back (`ResetGate`,
confirmed by `reset_done`). Refusals say why: out of range, wrong run or episode, already
scored, unknown run.
"""

from dataclasses import dataclass
import math
from pathlib import Path
import threading
from typing import Callable, List, Optional, Tuple

from deft_common.runs import RunStore

# run_id -> rewards of its recorded episodes in order, or None when no such run exists
RunRewards = Callable[[str], Optional[List[float]]]


@dataclass(frozen=True)
class OperatorVerdict:
    """What the operator said about an episode (reward is NaN when discarded)."""

    reward: float
    discard: bool


def recorded_rewards(run_root: Path, run_id: str) -> Optional[List[float]]:
    """Return the rewards of a run's recorded episodes, or None when there is no such run."""
    try:
        store = RunStore(run_root, run_id)
    except ValueError:  # not even a valid run id
        return None
    if not store.exists:
        return None
    try:
        return [e.reward for e in store.episodes()]
    except (OSError, ValueError):
        return []


def already_scored(run_id: str, episode: int, reward: float) -> str:
    """Return the refusal for a score of an episode that has one."""
    return f'episode {episode} of run {run_id!r} was already scored (reward {reward:.3f})'


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

    def submit(self, run_id: str, episode: int, reward: float, discard: bool,
               history: Optional[RunRewards] = None) -> Tuple[bool, str]:
        """
        Deliver a score; return (accepted, message a person can act on).

        `history` looks up the recorded episodes of a run, so a score for an episode recorded
        earlier, or for a run that does not exist, is refused with that reason.
        """
        if not discard and (not math.isfinite(reward) or not 0.0 <= reward <= 1.0):
            return False, (f'reward must be within [0, 1], got {reward} (or set discard: '
                           'true to re-record the episode)')
        with self._lock:
            waiting, verdict = self._waiting, self._verdict
            if waiting is not None and run_id == waiting[0] and episode in (-1, waiting[1]):
                if verdict is not None:
                    if verdict.discard:
                        return False, (f'episode {waiting[1]} of run {run_id!r} was already '
                                       'discarded')
                    return False, already_scored(run_id, waiting[1], verdict.reward)
                self._verdict = OperatorVerdict(math.nan if discard else float(reward),
                                                discard)
                what = 'discarded' if discard else f'reward {reward:.3f}'
                return True, f'episode {waiting[1]} of run {run_id!r}: {what}'
        return False, self._refusal(run_id, episode, waiting, history)

    @staticmethod
    def _refusal(run_id: str, episode: int, waiting: Optional[Tuple[str, int]],
                 history: Optional[RunRewards]) -> str:
        rewards = history(run_id) if history is not None and run_id else None
        if rewards is not None and 0 <= episode < len(rewards):
            return already_scored(run_id, episode, rewards[episode])
        now = ('no episode is waiting for a reward' if waiting is None else
               f'the episode waiting is {waiting[1]} of run {waiting[0]!r}')
        if history is not None and run_id and rewards is None and \
                (waiting is None or waiting[0] != run_id):
            return f'unknown run {run_id!r}: no run of that name, and it is not waiting; {now}'
        if waiting is None:
            return now
        if run_id != waiting[0]:
            return f'run {run_id!r} is not waiting; {now}'
        return (f'episode {episode} is not waiting; episode {waiting[1]} is (use -1 for the '
                'episode waiting)')


class ResetGate:
    """The operator's "the scene is reset" for the episode that waits for it (reset_done)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: Optional[Tuple[str, int]] = None
        self._done = False

    def expect(self, run_id: str, episode: int) -> None:
        """Start waiting for the operator to reset the scene after an episode."""
        with self._lock:
            self._waiting, self._done = (run_id, episode), False

    def close(self) -> None:
        """Stop waiting; later confirmations are refused."""
        with self._lock:
            self._waiting, self._done = None, False

    def done(self) -> bool:
        """Return whether the operator confirmed the reset."""
        with self._lock:
            return self._done

    def confirm(self) -> Tuple[bool, str]:
        """Confirm the reset (reset_done); return (success, message)."""
        with self._lock:
            if self._waiting is None:
                return False, 'no episode is waiting for a scene reset'
            run_id, episode = self._waiting
            label = f'episode {episode}' if episode >= 0 else 'the one-off episode'
            label += f' of run {run_id!r}' if run_id else ''
            if self._done:
                return False, f'the reset after {label} was already confirmed'
            self._done = True
            return True, f'scene reset after {label}: continuing'
