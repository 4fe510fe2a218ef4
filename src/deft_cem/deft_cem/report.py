"""
Report a run: the paper's Figure 4 as a PNG, a text summary and the rewards as CSV.

The plot shows the reward per episode (numbered from 1, as the fine_tune feedback counts them;
episode k is the run's episodes/<k - 1>.json), the mean of the E best so far and the end of the
warm-up (after episode M, the last draw from the initial distribution), on a [0, 1] reward axis.

    python -m deft_cem.report runs/<run_id>   # writes report.png, summary.txt, rewards.csv there
    deft_report --figure4 fig4.png RUN_DIRS   # one figure over many runs (deft_cem.figure4)
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional, Sequence

import numpy as np

from deft_common.runs import EpisodeEntry, RunSettings, RunStore, atomic_write


def elite_means(rewards: Sequence[float], elites: int) -> List[float]:
    """Return, after each episode k, the mean reward of the E best episodes among 0..k."""
    out, seen = [], []
    for r in rewards:
        seen.append(r)
        out.append(float(np.mean(sorted(seen, reverse=True)[:elites])))
    return out


def summary_text(settings: RunSettings, entries: Sequence[EpisodeEntry], run_id: str) -> str:
    """Return a short plain-text summary of a run."""
    rewards = [e.reward for e in entries]
    lines = [f'run {run_id}: "{settings.task}" ({settings.optimizer}, prior {settings.prior}, '
             f'reward {settings.reward_source}, seed {settings.seed})',
             f'episodes: {len(entries)} of {settings.episodes} '
             f'(warm-up {settings.warmup_episodes}, elites {settings.elites})']
    if rewards:
        best = int(np.argmax(rewards))
        warm = rewards[:settings.warmup_episodes]
        after = rewards[settings.warmup_episodes:]
        lines += [f'best reward: {rewards[best]:.3f} at episode {best + 1} '
                  f'(episodes/{entries[best].episode:06d}.json)',
                  f'mean reward, warm-up: {np.mean(warm):.3f}'
                  + (f'; after warm-up: {np.mean(after):.3f}' if after else ''),
                  f'elite mean at the end: {elite_means(rewards, settings.elites)[-1]:.3f}',
                  'best residual: ' + ', '.join(f'{n}={v:+.4f}' for n, v in
                                                zip(settings.parameter_names, entries[best].eps))]
    else:
        lines.append('no finished episode yet')
    return '\n'.join(lines) + '\n'


def rewards_csv(settings: RunSettings, entries: Sequence[EpisodeEntry]) -> str:
    """Return the rewards as CSV: episode (from 1), reward, elite mean so far, stage, source."""
    rows = ['episode,reward,elite_mean,stage,reward_source']
    means = elite_means([e.reward for e in entries], settings.elites)
    for k, (e, m) in enumerate(zip(entries, means), start=1):
        stage = 'warmup' if k <= settings.warmup_episodes else 'cem'
        rows.append(f'{k},{e.reward:.6f},{m:.6f},{stage},{e.reward_source}')
    return '\n'.join(rows) + '\n'


def plot(settings: RunSettings, entries: Sequence[EpisodeEntry], path: Path, title: str) -> None:
    """Write the reward-per-episode PNG, atomically (an old file stays until the new is whole)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rewards = [e.reward for e in entries]
    k = np.arange(1, len(rewards) + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    try:
        ax.plot(k, rewards, 'o', color='tab:blue', alpha=0.7, label='episode reward')
        if rewards:
            ax.plot(k, elite_means(rewards, settings.elites), '-', color='tab:orange', lw=2,
                    label=f'mean of the {settings.elites} best so far')
        ax.axvline(settings.warmup_episodes + 0.5, color='gray', ls='--',
                   label=f'end of warm-up (episodes 1..{settings.warmup_episodes})')
        ax.set_xlim(0.5, max(settings.episodes, len(rewards)) + 0.5)
        ax.set_ylim(-0.02, 1.02)  # rewards are in [0, 1]
        ax.set_xlabel('episode')
        ax.set_ylabel(f'reward ({settings.reward_source})')
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc='lower right', fontsize=8)
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format='png'))
    finally:
        plt.close(fig)


def write_report(run_dir: Path) -> Path:
    """
    Write report.png, summary.txt and rewards.csv into a run directory; return the PNG path.

    Each file is replaced atomically: a failure or a kill mid-write leaves the previous one.
    """
    run_dir = Path(run_dir)
    store = RunStore(run_dir.parent, run_dir.name)
    settings = store.settings()
    entries = store.episodes()
    atomic_write(run_dir / 'summary.txt', summary_text(settings, entries, store.run_id))
    atomic_write(run_dir / 'rewards.csv', rewards_csv(settings, entries))
    png = run_dir / 'report.png'
    plot(settings, entries, png, f'{settings.task} ({store.run_id})')
    return png


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: report one or more run directories."""
    parser = argparse.ArgumentParser(prog='deft_report', description=__doc__.split('\n\n')[0])
    parser.add_argument('run_dirs', nargs='+', type=Path, help='run directories')
    parser.add_argument('--figure4', type=Path, default=None, metavar='PNG',
                        help="instead: the paper's Figure 4 over all the runs (DEFT vs "
                             'real-world only, a panel per task) as PNG, and CSV beside it')
    opts = parser.parse_args(argv)
    if opts.figure4 is not None:
        from deft_cem.figure4 import write_figure4
        try:
            png, csv = write_figure4(opts.run_dirs, opts.figure4)
        except (OSError, ValueError) as exc:
            print(f'deft_report: {exc}', file=sys.stderr)
            return 1
        print(f'figure 4 of {len(opts.run_dirs)} runs: {png} and {csv}')
        return 0
    code = 0
    for run_dir in opts.run_dirs:
        try:
            png = write_report(run_dir)
        except (OSError, ValueError) as exc:
            print(f'deft_report: {run_dir}: {exc}', file=sys.stderr)
            code = 1
            continue
        print((run_dir / 'summary.txt').read_text(), end='')
        print(f'plot: {png}')
    return code


if __name__ == '__main__':
    sys.exit(main())
