"""
Evaluate a trained affordance model on a dataset directory; print metrics, draw a few crops.

    deft_eval_affordance DATA_DIR model.pt [--split test] [--clip-weights PATH] [--png out.png]

Metrics (see `deft_affordance.training`): contact error in pixels of the crop (matched set and
mean point), wrist geodesic error in degrees, MANO pose error (mean joint angle in degrees, mean
absolute error in radians). The split defaults to "test" if the dataset has one, else "val", else
every sample. The PNG (default: beside the checkpoint, model.pt -> model.eval.png) shows up to
--show crops with labelled contacts (green circles) and predicted ones (red crosses). Bad input
exits with status 2 and one line saying what is wrong.
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Optional, Sequence

import numpy as np

PROG = 'deft_eval_affordance'


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('data_dir', type=Path, help='dataset directory holding manifest.jsonl')
    p.add_argument('checkpoint', type=Path, help='checkpoint written by deft_train_affordance')
    p.add_argument('--split', default='auto', choices=('auto', 'all', 'train', 'val', 'test'))
    p.add_argument('--clip-weights', default=None,
                   help='CLIP weights path (default: the one stored in the checkpoint)')
    p.add_argument('--allow-random', action='store_true',
                   help='accept a checkpoint trained with a random CLIP text tower')
    p.add_argument('--png', type=Path, default=None, help='figure to write')
    p.add_argument('--show', type=int, default=8, help='crops drawn in the figure')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', action='store_true', help='print the metrics as one JSON line')
    return p


def draw(samples, points: np.ndarray, path: Path, show: int, cell: int = 160) -> Path:
    """Write a grid of crops with labelled (green o) and predicted (red x) contacts, a legend."""
    from PIL import Image, ImageDraw

    from deft_affordance.dataset import load_crop
    from deft_common.runs import atomic_write

    n = max(1, min(show, len(samples)))
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    legend = 20  # px: the key at the bottom
    sheet = Image.new('RGB', (max(cols * cell, 320), rows * (cell + 14) + legend), 'white')
    pen = ImageDraw.Draw(sheet)

    def circle(x, y):
        pen.ellipse([x - 5, y - 5, x + 5, y + 5], outline=(0, 200, 0), width=2)

    def cross(x, y):
        pen.line([x - 5, y - 5, x + 5, y + 5], fill=(230, 0, 0), width=2)
        pen.line([x - 5, y + 5, x + 5, y - 5], fill=(230, 0, 0), width=2)

    y_key = rows * (cell + 14) + legend // 2
    circle(10, y_key)
    pen.text((20, y_key - 6), 'labelled contact', fill='black')
    cross(140, y_key)
    pen.text((150, y_key - 6), 'predicted contact', fill='black')
    for k in range(n):
        s = samples[k]
        img = Image.fromarray(load_crop(s.crop)).resize((cell, cell))
        x0, y0 = (k % cols) * cell, (k // cols) * (cell + 14)
        sheet.paste(img, (x0, y0 + 14))
        pen.text((x0 + 2, y0 + 1), s.task[:26], fill='black')
        w, h = s.size

        def at(uv, x0=x0, y0=y0, w=w, h=h):
            return x0 + (uv[0] + 0.5) * cell / w, y0 + 14 + (uv[1] + 0.5) * cell / h

        for uv in s.contact_points:
            circle(*at(uv))
        for uv in points[k]:
            cross(*at(uv))
    return atomic_write(Path(path), lambda f: sheet.save(f, format='PNG'))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate from the command line; return the exit code."""
    try:
        opts = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def fail(msg: str) -> int:
        print(f'{PROG}: error: {msg}', file=sys.stderr)
        return 2

    if opts.show < 0 or opts.batch_size < 1:
        return fail('--show must be >= 0 and --batch-size >= 1')
    from deft_affordance.dataset import AffordanceDataset, read_manifest, select_split
    from deft_affordance.model import AffordanceModel
    from deft_affordance.training import METRICS, evaluate_samples

    try:
        samples = read_manifest(opts.data_dir)
        split = opts.split
        if split == 'auto':
            present = {s.split for s in samples}
            split = 'test' if 'test' in present else 'val' if 'val' in present else 'all'
        chosen = select_split(samples, split)
        if not chosen:
            raise ValueError(f'{opts.data_dir}: no samples of split {split!r}')
        model = AffordanceModel.load(opts.checkpoint, opts.clip_weights, opts.device,
                                     allow_random=opts.allow_random)
        per = evaluate_samples(model, AffordanceDataset(chosen, model.config.image_size),
                               opts.batch_size)
        metrics = {k: float(np.mean(per[k])) for k in METRICS}
        png = None
        if opts.show:
            png = draw(chosen, per['points'], opts.png or opts.checkpoint.with_suffix('.eval.png'),
                       opts.show)
    except (OSError, ValueError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if opts.json:
        print(json.dumps({'split': split, 'samples': len(chosen), **metrics}))
    else:
        print(f'{len(chosen)} samples of split {split!r}')
        units = {'contact_px': 'px', 'contact_mean_px': 'px', 'wrist_deg': 'deg',
                 'hand_pose_deg': 'deg', 'hand_pose_mae': 'rad'}
        for k in METRICS:
            print(f'{k:16s} {metrics[k]:10.3f} {units[k]}')
        if png:
            print(f'figure: {png}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
