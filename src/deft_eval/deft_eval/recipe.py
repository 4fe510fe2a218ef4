"""
The affordance recipe: simulated human labels -> a trained prior f -> its success in the twin.

    deft_affordance_recipe --out DIR      (about 10 minutes on a 2-core machine)

One command, three stages, progress lines throughout:

1. Labels: for every task of deft_sim.tasks.TASK_SPECS, `--n` simulated human demonstration
   clips (deft_sim.human_demos, docs/human_demos.md): a MANO-proportioned hand grasps the
   object the way people do (the cup by its side, the spoon pinched, the drawer hooked) on
   train configurations, in varied scenes and from viewpoints other than the robot's, and each
   clip is labelled as a video is (the first contact frame, contact centres in the hand-free
   crop, the MANO wrist and pose at contact). Only train configurations are demonstrated; a
   seeded share of the clips (`--val-fraction`) is the `val` split that picks the kept epoch,
   so no test configuration is seen by training or model selection.
   -> DIR/data/manifest.jsonl + DIR/data/crops/ + DIR/data/taus.json
2. Training: deft_affordance's training API (AffordanceModel.build + training.fit): ResNet-18
   from random initialisation (no weights can be downloaded here), the frozen random CLIP text
   tower (`--allow-random` semantics), `--image-size` px, torch on `--threads` threads. The
   number of epochs is planned from a timed training step so the cosine schedule fits the
   wall-clock budget (`--train-budget`; default: what `--budget` leaves after the labels and the
   evaluation's estimate); epochs stop early when the budget runs out; the checkpoint with the
   best validation score (mean contact error as a fraction of the crop + wrist error / 180 deg)
   is kept. -> DIR/model.pt, DIR/model.csv
3. Evaluation: prior-only success of the trained model (`affordance`) and of the heuristic
   baseline (`heuristic`: box centre, random wrist yaw, half-closed hand) on `--trials`
   held-out placements per task (split `--split`, seeds disjoint from the labels), each prior
   executed once in MuJoCo with the task's tau (sim_eval). A table is printed and everything goes
   to DIR/summary.json.
"""

import argparse
from dataclasses import replace
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np

PROG = 'deft_affordance_recipe'
VAL_WEIGHTS = (1.0, 1.0 / 180.0)  # validation score: contact (fraction of crop) + wrist deg / 180


def log(msg: str) -> None:
    """Print one progress line with the time since the recipe started."""
    print(f'[{time.monotonic() - _START:6.1f} s] {msg}', flush=True)


_START = time.monotonic()


# --- 1. labels -----------------------------------------------------------------------------
def write_labels(root: Path, tasks: Sequence[str], n: int, seed: int = 0,
                 val_fraction: float = 0.15) -> Dict[str, int]:
    """Write n human demonstration clips per task into root (human_demos); return counts."""
    from deft_sim.human_dataset import write_dataset
    from deft_sim.human_scene import DemoSettings

    counts: Dict[str, int] = dict.fromkeys(tasks, 0)
    t0 = {'t': time.monotonic()}

    def progress(task, i, total, clip, seconds):
        if clip is not None:
            counts[task] += 1
        if i == total - 1:
            log(f'labels {task}: {counts[task]}/{total} clips with a contact in '
                f'{time.monotonic() - t0["t"]:.1f} s')
            t0['t'] = time.monotonic()

    write_dataset(str(root), tasks, n, seed, DemoSettings(val_fraction=val_fraction),
                  progress=progress)
    return counts


# --- 2. training ---------------------------------------------------------------------------
class _OutOfTime(Exception):
    pass


def val_score(row: Dict[str, float], crop_px: float) -> float:
    """Return the validation score of an epoch row (lower is better; see VAL_WEIGHTS)."""
    return (VAL_WEIGHTS[0] * row['eval_contact_mean_px'] / crop_px
            + VAL_WEIGHTS[1] * row['eval_wrist_deg'])


def time_step(model, dataset, batch_size: int) -> float:
    """Return the seconds of one training step (forward + backward) on a copy of the net."""
    import copy

    from deft_affordance.dataset import collate
    from deft_affordance.training import losses

    net = copy.deepcopy(model.net).train()  # the model's own weights and BN stay untouched
    batch = collate([dataset[i % len(dataset)] for i in range(batch_size)])
    text = model.text(batch['task'])
    times = []
    for _ in range(2):  # the first one pays for lazy set-up
        t0 = time.monotonic()
        losses(model, net(batch['image'], text), batch)['loss'].backward()
        net.zero_grad(set_to_none=True)
        times.append(time.monotonic() - t0)
    return times[-1]


def train(data: Path, out: Path, budget: float, opts) -> Dict[str, object]:
    """Train the model on data/ within `budget` seconds; keep the best epoch in `out`."""
    from deft_affordance.dataset import AffordanceDataset, read_manifest, select_split
    from deft_affordance.model import AffordanceModel
    from deft_affordance.training import fit

    t0 = time.monotonic()
    samples = read_manifest(data)
    train_s, val_s = select_split(samples, 'train'), select_split(samples, 'val')
    model = AffordanceModel.build(
        'resnet18', clip_model=opts.clip_model, allow_random=True, image_size=opts.image_size,
        num_contacts=opts.num_contacts, d_model=opts.d_model, layers=opts.layers,
        heads=opts.heads, deconv_channels=opts.deconv_channels, init_seed=opts.seed)
    train_ds = AffordanceDataset(train_s, opts.image_size, seed=opts.seed)
    val_ds = AffordanceDataset(val_s, opts.image_size) if val_s else None
    for ds in (train_ds, val_ds):  # decode every crop once, before the clock matters
        for i in range(len(ds or ())):
            ds.image(i)
    step = time_step(model, train_ds, opts.batch_size)
    steps = math.ceil(len(train_ds) / opts.batch_size)
    val_steps = math.ceil(len(val_ds) / opts.batch_size) if val_ds else 0
    epoch_s = 1.1 * step * (steps + val_steps / 3.0)
    left = budget - (time.monotonic() - t0)
    epochs = int(max(1, min(opts.max_epochs, left // epoch_s)))
    log(f'training: {len(train_ds)} train / {len(val_s)} val samples, resnet18 (random init) at '
        f'{opts.image_size} px, {steps} steps of {step:.2f} s per epoch: {epochs} epochs planned '
        f'in {left:.0f} s')
    model.config.info = {'data_dir': str(data), 'train_samples': len(train_ds),
                         'val_samples': len(val_s), 'epochs': epochs,
                         'batch_size': opts.batch_size, 'lr': opts.lr,
                         'recipe': 'deft_eval.recipe'}
    best = {'score': math.inf, 'epoch': 0, 'done': 0}
    crop_px = float(train_s[0].size[0])  # metrics are in pixels of the crops as stored
    start = time.monotonic()

    def on_epoch(epoch: int, row: dict) -> None:
        best['done'] = epoch
        score = val_score(row, crop_px) if val_ds is not None else row['train_loss']
        mark = ''
        if score < best['score']:
            best.update(score=score, epoch=epoch, row=dict(row))
            model.config.info['epochs_done'] = epoch
            model.config.info['best'] = {k: round(float(v), 6) for k, v in row.items()}
            model.save(out)
            mark = ' (best, saved)'
        shown = '  '.join(f'{k} {v:.4g}' for k, v in row.items() if k not in ('epoch', 'lr'))
        log(f'epoch {epoch}/{epochs}  {shown}{mark}')
        spent = time.monotonic() - start
        if epoch < epochs and spent + row['seconds'] > left:
            raise _OutOfTime

    stopped = False
    try:
        fit(model, train_ds, epochs, opts.batch_size, opts.lr, opts.weight_decay, opts.seed,
            val_ds, out.with_suffix('.csv'), progress=False, on_epoch=on_epoch)
    except _OutOfTime:
        stopped = True
        log('training budget reached: stopped early')
    return {'epochs_planned': epochs, 'epochs_done': best['done'],
            'best_epoch': best['epoch'], 'stopped_early': stopped,
            'seconds': round(time.monotonic() - t0, 1),
            'best': {k: round(float(v), 4) for k, v in best.get('row', {}).items()}}


# --- 3. evaluation -------------------------------------------------------------------------
def evaluate(tasks: Sequence[str], model, settings, trials: int, split: str,
             oracle: bool = True, seed_offset: int = 0) -> Dict[str, Dict[str, object]]:
    """
    Return per task the prior-only success of `affordance` and `heuristic` (sim_eval).

    With `oracle`, also of the noise-free label through the model's lifting and retargeting
    (the ceiling of a perfect model: what the path after the model allows).
    """
    from deft_eval.sim_eval import SimEvaluator, eval_seed

    methods = ('affordance', 'heuristic') + (('oracle',) if oracle else ())
    results: Dict[str, Dict[str, object]] = {}
    for task in tasks:
        t0 = time.monotonic()
        per = {m: {'success': [], 'reward': [], 'errors': 0} for m in methods}
        with SimEvaluator(task, settings, model=model) as ev:
            for k in range(trials):
                seed = eval_seed(k, seed_offset)
                scene = ev.perceive(seed, split)
                for method in per:
                    try:
                        reward, success = ev.execute_prior(ev.prior(method, scene, seed), seed,
                                                           split)
                    except ValueError:  # no prior (the contact is off the object)
                        reward, success = 0.0, False
                        per[method]['errors'] += 1
                    per[method]['success'].append(bool(success))
                    per[method]['reward'].append(round(reward, 4))
        results[task] = {m: {'success_rate': float(np.mean(v['success'])),
                             'mean_reward': float(np.mean(v['reward'])),
                             'no_prior': v['errors'], 'rewards': v['reward']}
                         for m, v in per.items()}
        r = results[task]
        ceiling = (f', noise-free label {r["oracle"]["success_rate"]:.0%}' if oracle else '')
        log(f'eval {task} ({split}, {trials} placements): model prior '
            f'{r["affordance"]["success_rate"]:.0%} (reward {r["affordance"]["mean_reward"]:.2f}'
            f'), heuristic {r["heuristic"]["success_rate"]:.0%} (reward '
            f'{r["heuristic"]["mean_reward"]:.2f}){ceiling} in {time.monotonic() - t0:.1f} s')
    return results


def table(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """Format prior-only success per task (and the mean) as a text table."""
    oracle = all('oracle' in r for r in results.values())
    lines = [f'{"task":<14}{"model prior":>13}{"heuristic":>11}'
             + (f'{"label (ceiling)":>17}' if oracle else '')
             + f'{"reward (model / heur.)":>25}']
    for task, r in results.items():
        a, h = r['affordance'], r['heuristic']
        lines.append(f'{task:<14}{a["success_rate"]:>13.0%}{h["success_rate"]:>11.0%}'
                     + (f'{r["oracle"]["success_rate"]:>17.0%}' if oracle else '')
                     + f'{a["mean_reward"]:>15.2f} / {h["mean_reward"]:.2f}')
    means = [np.mean([r[m]['success_rate'] for r in results.values()])
             for m in ('affordance', 'heuristic') + (('oracle',) if oracle else ())]
    widths = (13, 11, 17)
    lines.append(f'{"mean":<14}' + ''.join(f'{m:>{w}.0%}' for m, w in zip(means, widths)))
    return '\n'.join(lines)


# --- the command ---------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.strip().split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--out', type=Path, required=True, help='output directory')
    p.add_argument('--tasks', default='', help='comma-separated task ids (default: all)')
    p.add_argument('--n', type=int, default=120,
                   help='human demonstration clips per task (train configurations)')
    p.add_argument('--val-fraction', type=float, default=0.15,
                   help='seeded share of the clips in the val split (model selection)')
    p.add_argument('--budget', type=float, default=570.0,
                   help='wall-clock seconds of the whole recipe (sets the training budget)')
    p.add_argument('--train-budget', type=float, default=0.0,
                   help='seconds of training (0: what --budget leaves after the labels and '
                        'the evaluation estimate)')
    p.add_argument('--eval-seconds', type=float, default=0.8,
                   help='estimated seconds per evaluated episode (for the automatic budget)')
    p.add_argument('--image-size', type=int, default=96, help='model input side (x32)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=1e-3, help='AdamW learning rate (cosine decay)')
    p.add_argument('--weight-decay', type=float, default=1e-4)
    p.add_argument('--max-epochs', type=int, default=40)
    p.add_argument('--num-contacts', type=int, default=5)
    p.add_argument('--d-model', type=int, default=128)
    p.add_argument('--layers', type=int, default=2)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument('--deconv-channels', type=int, default=64)
    p.add_argument('--clip-model', default='ViT-B-32',
                   help='open_clip model name or config .json (random, frozen text tower)')
    p.add_argument('--trials', type=int, default=10, help='evaluated placements per task')
    p.add_argument('--split', choices=('train', 'test'), default='test',
                   help='placement distribution of the evaluation')
    p.add_argument('--no-oracle', action='store_true',
                   help='skip the noise-free label through the same path (the ceiling)')
    p.add_argument('--retargeting-config', default='',
                   help="MANO -> hand retargeting YAML (default: the sim graph's affordance "
                        'retargeting_config)')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--seed', type=int, default=0)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the recipe; return the exit status (0 when it ran, whatever the comparison)."""
    global _START
    _START = time.monotonic()
    os.environ.setdefault('MUJOCO_GL', 'egl')
    opts = parser().parse_args(argv)

    def fail(msg: str) -> int:
        print(f'{PROG}: error: {msg}', file=sys.stderr)
        return 2

    if opts.n < 2 or opts.trials < 1 or opts.max_epochs < 1 or opts.batch_size < 1:
        return fail('--n must be >= 2, --trials, --max-epochs and --batch-size >= 1')
    if not 0 <= opts.val_fraction < 1:
        return fail('--val-fraction must be in [0, 1)')
    if opts.image_size < 32 or opts.image_size % 32:
        return fail('--image-size must be a multiple of 32')
    import torch
    import torch._dynamo  # noqa: F401 - before any GL context (sim_eval.load_torch_before_gl)

    from deft_eval.sim_eval import SimEvalSettings
    from deft_sim.tasks import TASK_SPECS

    torch.set_num_threads(max(1, opts.threads))
    tasks = [t for t in opts.tasks.split(',') if t] if opts.tasks else list(TASK_SPECS)
    unknown = [t for t in tasks if t not in TASK_SPECS]
    if unknown:
        return fail(f'unknown tasks {unknown}; known: {", ".join(TASK_SPECS)}')
    try:
        settings = SimEvalSettings.from_graph()
        if opts.retargeting_config:
            settings = replace(settings, retargeting_config=opts.retargeting_config)
    except ValueError as exc:
        return fail(str(exc))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    log(f'{PROG}: {len(tasks)} tasks ({", ".join(tasks)}), {opts.n} labels each, budget '
        f'{opts.budget:.0f} s, torch threads {torch.get_num_threads()}, load '
        f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    t_labels = time.monotonic()
    counts = write_labels(out / 'data', tasks, opts.n, opts.seed, opts.val_fraction)
    labels_s = time.monotonic() - t_labels
    episodes = 2 if opts.no_oracle else 3
    eval_estimate = opts.eval_seconds * episodes * opts.trials * len(tasks)
    budget = opts.train_budget or max(
        30.0, opts.budget - (time.monotonic() - _START) - eval_estimate - 15.0)
    log(f'labels done in {labels_s:.0f} s; training budget {budget:.0f} s (evaluation '
        f'estimated at {eval_estimate:.0f} s)')
    checkpoint = out / 'model.pt'
    try:
        training = train(out / 'data', checkpoint, budget, opts)
    except ValueError as exc:
        return fail(f'training failed: {exc}')
    from deft_affordance.model import AffordanceModel
    model = AffordanceModel.load(checkpoint, allow_random=True)
    log(f'best epoch {training["best_epoch"]} of {training["epochs_planned"]} -> {checkpoint}')
    t_eval = time.monotonic()
    results = evaluate(tasks, model, settings, opts.trials, opts.split, not opts.no_oracle)
    mean_a = float(np.mean([r['affordance']['success_rate'] for r in results.values()]))
    mean_h = float(np.mean([r['heuristic']['success_rate'] for r in results.values()]))
    wall = time.monotonic() - _START
    print(f'\nprior-only success on {opts.trials} held-out placements per task '
          f'(split {opts.split}):\n{table(results)}\n', flush=True)
    verdict = 'beats' if mean_a > mean_h else 'does NOT beat'
    log(f'the model prior {verdict} the heuristic ({mean_a:.0%} vs {mean_h:.0%}); recipe wall '
        f'time {wall:.0f} s')
    summary = {
        'checkpoint': str(checkpoint), 'tasks': tasks, 'labels': counts,
        'split': opts.split, 'trials': opts.trials,
        'results': results,
        'mean': {m: float(np.mean([r[m]['success_rate'] for r in results.values()]))
                 for m in next(iter(results.values()))},
        'model_beats_heuristic': mean_a > mean_h,
        'training': training,
        'seconds': {'labels': round(labels_s, 1), 'training': training['seconds'],
                    'evaluation': round(time.monotonic() - t_eval, 1), 'total': round(wall, 1)},
        'load_average': os.getloadavg()[0], 'cores': os.cpu_count(),
        'settings': {k: v for k, v in vars(opts).items() if k != 'out'},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    log(f'summary: {out / "summary.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
