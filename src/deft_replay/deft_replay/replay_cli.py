"""
`deft_replay_eval`: offline evaluation of recorded episodes (rosbag2 per episode).

    deft_replay_eval runs/<run_id>                          # its bags/ subdirectory
    deft_replay_eval bags/ one_episode_bag/ --out eval/     # any mix of bags and directories
    deft_replay_eval runs/<run_id> --embedding-weights resnet18.pt --goal-image goal.png

For every episode bag (see deft_replay.bag_format) it prints the recorded reward and its source,
re-runs the weight-free depth segmenter (deft_perception, backend `depth`) on the recorded first
frame and reports how far the object's centroid lies from the recorded prior's contact pixels
(`prior_shift_px`) and, when the final depth frame was recorded too, how far the object moved
during the episode (`object_shift_m`, 3D). With `--embedding-weights` and `--goal-image` it
recomputes the embedding reward of the final frame. Every recomputed quantity is compared with
the recorded rewards by Spearman's rank correlation. It writes `replay_metrics.json` and
`replay_metrics.png` into `--out`. Bags from other sources, or without an episode record, are
skipped with a warning; a bad argument is one line on stderr and exit code 2.
"""

import argparse
import json
import logging
import math
import os
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_replay.bag_format import BAGS_DIR, EpisodeBag, EpisodeBagError
from deft_replay.bag_reader import is_bag, read_episode_bag

PROG = 'deft_replay_eval'
METRICS_JSON = 'replay_metrics.json'
METRICS_PNG = 'replay_metrics.png'
LOG = logging.getLogger(PROG)


class InputError(ValueError):
    """A command-line input that cannot be used; the message says why."""


def find_bags(paths: Sequence[Path]) -> List[Path]:
    """
    Return the episode bags named by `paths`, in order, without duplicates.

    A path is a bag (rosbag2 directory or .mcap file), a run directory (its `bags/`) or a
    directory searched recursively (hidden directories, e.g. bags being written, are left out).
    InputError for a path that does not exist or is a file other than .mcap.
    """
    found: List[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError(f'{path} does not exist')
        if is_bag(path):
            found.append(path)
            continue
        if path.is_file():
            raise InputError(f'{path} is neither a rosbag2 directory, an .mcap file nor a '
                             'directory of bags')
        root = path / BAGS_DIR if (path / BAGS_DIR).is_dir() else path
        inside = []
        for parent, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
            here = Path(parent)
            if is_bag(here):
                inside.append(here)
                dirs[:] = []
                continue
            inside += [here / f for f in sorted(files) if f.endswith('.mcap')]
        if not inside:
            LOG.warning('%s: no episode bags found', path)
        found += inside
    unique, seen = [], set()
    for bag in found:
        key = bag.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(bag)
    return unique


def spearman(x: Sequence[float], y: Sequence[float]) -> Dict[str, Any]:
    """Return Spearman's rho and p-value over the pairs where both are finite, with the count."""
    from scipy.stats import spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    out: Dict[str, Any] = {'n': len(pairs), 'rho': None, 'p_value': None}
    if len(pairs) < 3:
        out['note'] = 'fewer than 3 episodes with both values'
        return out
    a, b = np.array(pairs).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        out['note'] = 'one of the two is constant'
        return out
    result = spearmanr(a, b)
    out['rho'], out['p_value'] = float(result.statistic), float(result.pvalue)
    return out


class Resegmenter:
    """Re-runs the weight-free depth segmenter on recorded frames."""

    def __init__(self, prompt: str = ''):
        from deft_perception.segmentation import DepthPlaneSegmenter

        self.prompt = prompt
        self.segmenter = DepthPlaneSegmenter()

    def centroid(self, bag: EpisodeBag, depth: np.ndarray, rgb: Optional[np.ndarray]):
        """Return (pixel centroid (u, v), 3D centroid in the optical frame) of the object."""
        from deft_perception.geometry import CameraModel
        from deft_perception.prompts import parse_prompt

        h, w = depth.shape
        camera = CameraModel.from_camera_info(bag.camera_k, w, h)
        prompt = parse_prompt(self.prompt, w, h)
        mask = self.segmenter.segment(rgb, depth, camera, prompt)
        v, u = np.nonzero(mask)
        points, _ = camera.backproject(mask, depth)
        return (float(u.mean()), float(v.mean())), points.mean(axis=0)

    def evaluate(self, bag: EpisodeBag) -> Dict[str, Any]:
        """Return the segmentation columns of a bag's row (NaN and a note when impossible)."""
        from deft_perception.segmentation import SegmentationError

        row: Dict[str, Any] = {'centroid_u': math.nan, 'centroid_v': math.nan,
                               'prior_shift_px': math.nan, 'object_shift_m': math.nan}
        if bag.initial_depth is None or bag.camera_k is None:
            row['segmentation'] = 'not run: no depth or camera_info recorded'
            return row
        try:
            (u, v), start = self.centroid(bag, bag.initial_depth, bag.initial_rgb)
        except (SegmentationError, ValueError) as exc:
            row['segmentation'] = f'initial frame: {exc}'
            return row
        row.update(centroid_u=u, centroid_v=v, segmentation='ok')
        pixels = (bag.prior or {}).get('contact_pixels') or []
        if len(pixels) >= 2:
            cu, cv = np.asarray(pixels[:len(pixels) // 2 * 2], float).reshape(-1, 2).mean(axis=0)
            row['prior_shift_px'] = float(math.hypot(cu - u, cv - v))
        if bag.final_depth is not None:
            try:
                _, end = self.centroid(bag, bag.final_depth, bag.final_rgb)
                row['object_shift_m'] = float(np.linalg.norm(end - start))
            except (SegmentationError, ValueError) as exc:
                row['segmentation'] = f'final frame: {exc}'
        return row


def evaluate(bags: Sequence[Path], prompt: str = '', embedding=None,
             namespace: Optional[str] = None) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Return (one row per usable episode bag, the reasons bags were skipped)."""
    rows, skipped = [], []
    segmenter = Resegmenter(prompt)
    for path in bags:
        try:
            bag = read_episode_bag(path, namespace)
        except EpisodeBagError as exc:
            LOG.warning('skipping %s', exc)
            skipped.append(str(exc))
            continue
        if bag.record is None:
            reason = f'{path}: no episode record (episodes topic), not an episode bag'
            LOG.warning('skipping %s', reason)
            skipped.append(reason)
            continue
        rec = bag.record
        row: Dict[str, Any] = {
            'bag': str(path), 'run_id': rec['run_id'], 'episode': rec['episode'],
            'reward_source': rec['reward_source'], 'reward': float(rec['reward']),
            'skipped_topics': len(bag.skipped)}
        row.update(segmenter.evaluate(bag))
        if embedding is not None:
            if bag.final_rgb is None:
                row['embedding_reward'] = math.nan
                row['embedding_distance'] = math.nan
            else:
                score = embedding.score(bag.final_rgb)
                row['embedding_reward'] = score.reward
                row['embedding_distance'] = score.distance
        rows.append(row)
    return rows, skipped


RECOMPUTED = ('embedding_reward', 'object_shift_m')


def metrics(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Return summary metrics: counts, centroid shifts, Spearman per recomputed column."""
    recorded = [r['reward'] for r in rows]
    out: Dict[str, Any] = {
        'episodes': len(rows),
        'recorded_reward_mean': _finite_mean(recorded),
        'segmented': sum(r.get('segmentation') == 'ok' for r in rows),
        'prior_shift_px_mean': _finite_mean([r['prior_shift_px'] for r in rows]),
        'spearman': {}}
    for column in RECOMPUTED:
        if any(column in r for r in rows):
            values = [r.get(column, math.nan) for r in rows]
            out['spearman'][column] = spearman(values, recorded)
    return out


def _finite_mean(values: Sequence[float]) -> Optional[float]:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def table(rows: Sequence[Dict[str, Any]]) -> str:
    """Return the per-episode table as text."""
    columns = ['run_id', 'episode', 'reward_source', 'reward', 'prior_shift_px',
               'object_shift_m'] + [c for c in ('embedding_reward',) if any(c in r for r in rows)]
    lines = ['  '.join(f'{c:>14}' for c in columns) + '  bag']
    for r in rows:
        cells = []
        for c in columns:
            value = r.get(c, '')
            cells.append(f'{value:14.4f}' if isinstance(value, float) else f'{value!s:>14}')
        lines.append('  '.join(cells) + f'  {r["bag"]}')
    return '\n'.join(lines)


def plot(rows: Sequence[Dict[str, Any]], summary: Dict[str, Any], path: Path) -> Path:
    """Write the PNG: recorded reward per episode and each recomputed column against it."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    from deft_common.runs import atomic_write

    columns = list(summary['spearman'])
    fig, axes = plt.subplots(1, 1 + len(columns), figsize=(4.5 * (1 + len(columns)), 3.8),
                             squeeze=False)
    ax = axes[0][0]
    ax.plot(range(len(rows)), [r['reward'] for r in rows], 'o-')
    ax.set_xlabel('episode (bag order)')
    ax.set_ylabel('recorded reward')
    ax.set_title(f'{len(rows)} episodes')
    for ax, column in zip(axes[0][1:], columns):
        ax.scatter([r.get(column, math.nan) for r in rows], [r['reward'] for r in rows])
        rho = summary['spearman'][column]['rho']
        ax.set_title(f'{column}: Spearman rho ' + ('n/a' if rho is None else f'{rho:.3f}'))
        ax.set_xlabel(column)
        ax.set_ylabel('recorded reward')
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=100))
    finally:
        plt.close(fig)
    return path


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('paths', nargs='+', type=Path, metavar='PATH',
                   help='episode bags, directories of bags, or run directories (bags/ inside)')
    p.add_argument('--out', type=Path, default=Path('replay_eval'),
                   help=f'directory for {METRICS_JSON} and {METRICS_PNG} (default: ./replay_eval)')
    p.add_argument('--prompt', default='',
                   help='object prompt for re-segmentation: "" (salient object), '
                        '"point: u, v" or "box: u0, v0, u1, v1"')
    p.add_argument('--namespace', default=None,
                   help='only read episode topics under this namespace (default: any)')
    p.add_argument('--embedding-weights', default='',
                   help='encoder weights to recompute the embedding reward of the final frame')
    p.add_argument('--goal-image', default='', help='goal image of the embedding reward')
    p.add_argument('--encoder', default='resnet18', choices=('resnet18', 'r3m'),
                   help='encoder of the embedding reward (default resnet18)')
    p.add_argument('--embedding-scale', type=float, default=20.0,
                   help='distance scale d0 of reward = exp(-d / d0) (default 20)')
    p.add_argument('--no-plot', action='store_true', help='do not write the PNG')
    p.add_argument('--quiet', action='store_true', help='print only the metrics')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate recorded episodes from the command line; return the exit code."""
    try:
        opts = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed why (exit 2) or the help (exit 0)
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(format=f'{PROG}: warning: %(message)s', level=logging.WARNING)

    def fail(msg: str) -> int:
        print(f'{PROG}: error: {msg}', file=sys.stderr)
        return 2

    if bool(opts.embedding_weights) != bool(opts.goal_image):
        return fail('--embedding-weights and --goal-image go together: give both or neither')
    if opts.out.exists() and not opts.out.is_dir():
        return fail(f'--out {opts.out} exists and is not a directory')
    from deft_perception.prompts import parse_prompt

    try:  # the syntax here; whether it lies inside each recorded image, per episode
        kind = parse_prompt(opts.prompt, sys.maxsize, sys.maxsize).kind
    except ValueError as exc:
        return fail(f'--prompt: {exc}')
    if kind == 'label':
        return fail('--prompt: the depth segmenter takes "", "point: u, v" or '
                    '"box: u0, v0, u1, v1", not a label')
    try:
        bags = find_bags(opts.paths)
    except InputError as exc:
        return fail(str(exc))
    if not bags:
        return fail(f'no episode bags in {", ".join(str(p) for p in opts.paths)}')
    embedding = None
    if opts.embedding_weights:
        from deft_affordance.embedding_reward import EmbeddingReward  # torch: only when asked for
        try:
            embedding = EmbeddingReward.from_config(
                opts.encoder, opts.embedding_weights, opts.goal_image,
                scale=opts.embedding_scale)
        except ValueError as exc:
            return fail(str(exc))
    rows, skipped = evaluate(bags, opts.prompt, embedding, opts.namespace)
    if not rows:
        return fail(f'none of the {len(bags)} bag(s) holds an episode record '
                    f'({len(skipped)} skipped)')
    summary = metrics(rows)
    summary['skipped_bags'] = skipped
    if not opts.quiet:
        print(table(rows))
    for column, result in summary['spearman'].items():
        rho = 'n/a (' + result.get('note', '') + ')' if result['rho'] is None \
            else f'{result["rho"]:.3f} (p = {result["p_value"]:.3g})'
        print(f'spearman({column}, recorded reward) over {result["n"]} episodes: {rho}')
    print(f'{summary["episodes"]} episodes, {summary["segmented"]} re-segmented, '
          f'{len(skipped)} bag(s) skipped')
    from deft_common.runs import atomic_write

    opts.out.mkdir(parents=True, exist_ok=True)
    document = {'metrics': summary, 'episodes': rows}
    atomic_write(opts.out / METRICS_JSON, json.dumps(_json_safe(document), indent=2))
    if not opts.no_plot:
        plot(rows, summary, opts.out / METRICS_PNG)
    print(f'wrote {opts.out / METRICS_JSON}' + ('' if opts.no_plot else
                                                 f' and {opts.out / METRICS_PNG}'))
    return 0


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf (not JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


if __name__ == '__main__':
    raise SystemExit(main())
