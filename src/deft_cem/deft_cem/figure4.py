"""
The paper's Figure 4 from run directories: reward per episode, DEFT against real-world only.

    deft_report --figure4 figure4.png RUN_DIR [RUN_DIR ...]    (also writes figure4.csv)

Runs are grouped by task (run.json `task`) and prior (`affordance`: DEFT; `heuristic`: real-world
only, the paper's baseline); each task is one panel, each group one line: the reward of episode k
(numbered from 1, as the fine_tune feedback and the console count them; episodes/<k - 1>.json)
averaged over the group's runs (seeds, or the robot's runs of that task), with the 95 % Student-t
band of that mean over runs (no band where only one run has the episode). The y axis is fixed to
[0, 1]. Any finished run directory works: those the twin's bench writes and those the episode node
writes on the robot (runs stopped early contribute the episodes they have).

The CSV has one row per task, method and episode: task, method, episode, runs, mean, low, high.
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from deft_common.runs import RunStore, atomic_write
from deft_common.stats import mean_interval

METHOD_OF_PRIOR = {'affordance': 'DEFT', 'heuristic': 'real-world only'}
COLORS = {'DEFT': 'tab:blue', 'real-world only': 'tab:red'}


@dataclass
class Curve:
    """The mean reward per episode of a group of runs, with its 95 % band."""

    task: str
    method: str
    runs: List[str]
    n: List[int]          # runs that have episode k (k from 1)
    mean: List[float]
    low: List[float]      # NaN where no band (one run)
    high: List[float]


def read_rewards(run_dir: Path) -> Tuple[str, str, List[float]]:
    """Return (task, method, rewards in episode order) of a run; ValueError for other priors."""
    run_dir = Path(run_dir)
    if not (run_dir / 'run.json').is_file():
        raise ValueError(f'{run_dir} is not a run directory (no run.json)')
    store = RunStore(run_dir.parent, run_dir.name)
    settings = store.settings()
    if settings.prior not in METHOD_OF_PRIOR:
        raise ValueError(f"{run_dir}: prior {settings.prior!r} is neither DEFT's (affordance) "
                         'nor real-world only (heuristic)')
    return settings.task, METHOD_OF_PRIOR[settings.prior], [e.reward for e in store.episodes()]


def curves(run_dirs: Sequence[Path]) -> List[Curve]:
    """Group runs by (task, method) and return their mean curves, tasks in first-seen order."""
    if not run_dirs:
        raise ValueError('give at least one run directory')
    groups: Dict[Tuple[str, str], List[Tuple[str, List[float]]]] = {}
    for run_dir in run_dirs:
        task, method, rewards = read_rewards(run_dir)
        groups.setdefault((task, method), []).append((Path(run_dir).name, rewards))
    out = []
    for (task, method), runs in groups.items():
        length = max(len(r) for _, r in runs)
        n, mean, low, high = [], [], [], []
        for k in range(length):
            values = [r[k] for _, r in runs if len(r) > k]
            m, band = mean_interval(values)
            n.append(len(values))
            mean.append(m)
            low.append(max(0.0, band[0]) if band else math.nan)
            high.append(min(1.0, band[1]) if band else math.nan)
        out.append(Curve(task, method, [name for name, _ in runs], n, mean, low, high))
    return out


def curves_csv(items: Sequence[Curve]) -> str:
    """Return the curves as CSV rows: task, method, episode (from 1), runs, mean, low, high."""
    rows = ['task,method,episode,runs,mean,low,high']
    for c in items:
        for k, (n, m, lo, hi) in enumerate(zip(c.n, c.mean, c.low, c.high), start=1):
            band = ('', '') if math.isnan(lo) else (f'{lo:.6f}', f'{hi:.6f}')
            rows.append(f'"{c.task}",{c.method},{k},{n},{m:.6f},{band[0]},{band[1]}')
    return '\n'.join(rows) + '\n'


def plot(items: Sequence[Curve], path: Path, title: str = '') -> Path:
    """Write the figure: one panel per task, one line and band per method; y in [0, 1]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = list(dict.fromkeys(c.task for c in items))
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=110,
                             squeeze=False)
    try:
        for ax, task in zip(axes.flat, tasks):
            for c in (c for c in items if c.task == task):
                k = np.arange(1, len(c.mean) + 1)
                color = COLORS.get(c.method)
                ax.plot(k, c.mean, '-', color=color, lw=1.8,
                        label=f'{c.method} ({len(c.runs)} runs)')
                ax.fill_between(k, c.low, c.high, color=color, alpha=0.2, lw=0)
            ax.set_ylim(0.0, 1.0)
            ax.set_xlim(0.5, max(len(c.mean) for c in items if c.task == task) + 0.5)
            ax.set_title(task, fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel('episode')
            ax.set_ylabel('reward')
            ax.grid(alpha=0.3)
            ax.legend(loc='lower right', fontsize=7)
        for ax in list(axes.flat)[len(tasks):]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        atomic_write(Path(path), lambda f: fig.savefig(f, format='png'))
    finally:
        plt.close(fig)
    return Path(path)


def write_figure4(run_dirs: Sequence[Path], png: Path, title: str = '') -> Tuple[Path, Path]:
    """Write Figure 4 as PNG and CSV (same name, .csv); return both paths."""
    png = Path(png)
    if png.suffix.lower() != '.png':
        raise ValueError(f'the figure path must end in .png, got {png}')
    items = curves([Path(d) for d in run_dirs])
    csv = png.with_suffix('.csv')
    atomic_write(csv, curves_csv(items))
    plot(items, png, title or 'Reward per episode, mean over runs with 95 % band')
    return png, csv
