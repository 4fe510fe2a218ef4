"""The runs under a run root, summarised: which can be resumed, how far each got, how well."""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import List, Tuple

from deft_common.runs import RUN_ID, RunStore


@dataclass(frozen=True)
class RunSummary:
    """One run: progress, best reward and how it was set up (deft_interfaces/msg/RunSummary)."""

    run_id: str
    task: str
    episodes_done: int
    episodes: int
    best_reward: float
    reward_source: str
    optimizer: str
    prior: str
    last_change: float

    @property
    def resumable(self) -> bool:
        """Return whether the run has episodes left (FineTune with resume: true goes on)."""
        return self.episodes_done < self.episodes

    def line(self) -> str:
        """Return a one-line description for a log."""
        best = 'no episode yet' if math.isnan(self.best_reward) else \
            f'best reward {self.best_reward:.3f}'
        return (f'{self.run_id}: "{self.task}", {self.episodes_done} of {self.episodes} '
                f'episodes, {best}')


def summarize(store: RunStore) -> RunSummary:
    """Return a run's summary; FileNotFoundError / ValueError from its files."""
    settings, entries = store.settings(), store.episodes()
    run_json = store.dir / 'run.json'
    last = entries[-1].stamp if entries else run_json.stat().st_mtime
    return RunSummary(
        run_id=store.run_id, task=settings.task, episodes_done=len(entries),
        episodes=settings.episodes,
        best_reward=max((e.reward for e in entries), default=math.nan),
        reward_source=settings.reward_source, optimizer=settings.optimizer,
        prior=settings.prior, last_change=float(last))


def list_runs(root: Path, resumable_only: bool = True) -> Tuple[List[RunSummary], List[str]]:
    """
    Return (summaries newest first, run ids that cannot be read) of the runs under `root`.

    A missing root has no runs. Directories that are not runs (no run.json, or a name that is
    not a run id) are ignored; runs whose files do not parse are reported, not raised.
    """
    root = Path(root)
    runs, unreadable = [], []
    if not root.is_dir():
        return runs, unreadable
    for path in sorted(root.iterdir()):
        if not path.is_dir() or not RUN_ID.match(path.name) or \
                not (path / 'run.json').is_file():
            continue
        try:
            summary = summarize(RunStore(root, path.name))
        except (OSError, ValueError) as exc:
            unreadable.append(f'{path.name}: {exc}')
            continue
        if summary.resumable or not resumable_only:
            runs.append(summary)
    runs.sort(key=lambda s: s.last_change, reverse=True)
    return runs, unreadable

