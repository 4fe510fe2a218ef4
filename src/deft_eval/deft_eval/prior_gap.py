"""
Where a prior loses against the robot's own grasp, component by component (the twin).

    python -m deft_eval.prior_gap --checkpoint model.pt [--tasks pick_cup,open_drawer]
        [--trials 8] [--split test] [--method affordance] [--out gap.json]

A prior learned from people carries the human grasp: where a person's hand touches the object,
how their wrist is turned, how their fingers close. The robot's hand may need another one. For
each task and `--trials` configurations of `--split` (seeds disjoint from the demonstrations'),
the prior of `--method` (the model's, or the heuristic) is compared with the robot's nominal
grasp of the task (deft_sim.tasks.TaskSpec.grasp_in and its named hand pose: the grasp the
scripted demonstration executes, which passes the task check): the distance of the grasp
positions (cm), of the wrist rotations (degrees) and of the hand joints (mean |difference|, rad),
and the task success of five executions at the configuration (deft_eval.sim_eval.execute):

- `prior`: the prior as it is (what prior-only success measures);
- `nominal`: the robot's nominal grasp (a grasp that does the task here: the ceiling);
- `+position`, `+wrist`, `+hand`: the prior with that one component replaced by the nominal
  grasp's. The component whose swap brings the success back is what the prior misses at that
  task; when no single swap does, the gap is in several components at once.

The nominal grasp is the twin's answer key; it is only ever used here, to explain a prior's
failures, never to train or select anything.
"""

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

VARIANTS = ('prior', 'nominal', '+position', '+wrist', '+hand')


def measure(ev, seed: int, split: str, method: str = 'affordance',
            prior=None) -> Dict[str, object]:
    """
    Compare the prior of `method` with the nominal grasp at configuration (seed, split).

    `ev` is a deft_eval.sim_eval.SimEvaluator of the task; `prior` (a sim_eval.Prior made at
    this configuration) is compared instead of the method's when given. Returns {'distance':
    {'position_cm', 'wrist_deg', 'hand_rad'}, 'success': {variant: bool}}; without a prior,
    {'error': why, 'success': ...} where only the nominal grasp can succeed.
    """
    from deft_common import rotations

    scene = ev.perceive(seed, split)
    position, wrist = ev.spec.grasp_in(ev.world)
    hand = np.asarray(ev.hand.pose(ev.spec.hand_pose), dtype=float)
    names = list(ev.hand.joint_names)
    try:
        prior = prior if prior is not None else ev.prior(method, scene, seed)
    except ValueError as exc:  # no prior: every variant made of it fails; the nominal is run
        _, ok = ev.execute(seed, split, position, wrist, names, hand)
        return {'error': str(exc), 'success': {v: v == 'nominal' and bool(ok) for v in VARIANTS}}
    by_name = dict(zip(prior.hand_joint_names, prior.hand_joint_positions))
    joints = np.array([float(by_name[n]) for n in names])
    grasps = {
        'prior': (prior.contact_point, prior.wrist_orientation, joints),
        'nominal': (position, wrist, hand),
        '+position': (position, prior.wrist_orientation, joints),
        '+wrist': (prior.contact_point, wrist, joints),
        '+hand': (prior.contact_point, prior.wrist_orientation, hand),
    }
    success = {}
    for variant, (p, q, h) in grasps.items():
        _, ok = ev.execute(seed, split, p, q, names, h)
        success[variant] = bool(ok)
    return {
        'distance': {
            'position_cm': float(np.linalg.norm(np.asarray(prior.contact_point) - position)
                                 * 100.0),
            'wrist_deg': float(np.degrees(rotations.angle_between(prior.wrist_orientation,
                                                                  wrist))),
            'hand_rad': float(np.mean(np.abs(joints - hand)))},
        'success': success}


def summarise(rows: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Median distances and success rates of a task's rows (a missing prior fails its own)."""
    measured = [r for r in rows if 'error' not in r]
    out: Dict[str, object] = {'configurations': len(rows), 'no_prior': len(rows) - len(measured)}
    out['distance_median'] = {k: (round(float(np.median([r['distance'][k] for r in measured])),
                                        3) if measured else None)
                              for k in ('position_cm', 'wrist_deg', 'hand_rad')}
    out['success_rate'] = {v: round(float(np.mean([r['success'][v] for r in rows])), 4)
                           if rows else None for v in VARIANTS}
    return out


def table(results: Dict[str, Dict[str, object]]) -> str:
    """Format the per-task summary as a text table."""
    head = (f'{"task":<13}{"position":>9}{"wrist":>7}{"hand":>6}  '
            + ''.join(f'{v:>10}' for v in VARIANTS))
    lines = [head, f'{"":<13}{"cm":>9}{"deg":>7}{"rad":>6}  (task success at the same '
             'configurations)']
    for task, r in results.items():
        d = r['distance_median']
        dist = ''.join(f'{("-" if d[k] is None else format(d[k], f)):>{w}}' for k, f, w in
                       (('position_cm', '.1f', 9), ('wrist_deg', '.0f', 7),
                        ('hand_rad', '.2f', 6)))
        lines.append(f'{task:<13}{dist}  ' + ''.join(f'{r["success_rate"][v]:>10.0%}'
                                                      for v in VARIANTS))
    return '\n'.join(lines)


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog='python -m deft_eval.prior_gap',
                                description=__doc__.strip().split('\n\n')[0])
    p.add_argument('--checkpoint', default='',
                   help='affordance model (deft_affordance_recipe); needed for --method '
                        'affordance')
    p.add_argument('--method', choices=('affordance', 'heuristic'), default='affordance')
    p.add_argument('--tasks', default='', help='comma-separated task ids (default: all)')
    p.add_argument('--trials', type=int, default=8, help='configurations per task')
    p.add_argument('--split', choices=('train', 'test'), default='test')
    p.add_argument('--allow-random', action='store_true',
                   help='load a checkpoint with randomly initialised parts (the recipe trains '
                        'with a random CLIP text tower when there are no CLIP weights)')
    p.add_argument('--out', type=Path, default=None, help='JSON file of the rows and summary')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the comparison; exit 2 on bad arguments."""
    opts = parser().parse_args(argv)
    from deft_eval.sim_eval import SimEvalSettings, SimEvaluator, eval_seed, load_torch_before_gl
    from deft_sim.tasks import TASK_SPECS

    tasks = [t for t in opts.tasks.split(',') if t] or list(TASK_SPECS)
    unknown = [t for t in tasks if t not in TASK_SPECS]
    if unknown or opts.trials < 1:
        print(f'prior_gap: unknown tasks {unknown} (known: {", ".join(TASK_SPECS)})' if unknown
              else 'prior_gap: --trials must be >= 1', file=sys.stderr)
        return 2
    if opts.method == 'affordance' and not opts.checkpoint:
        print('prior_gap: --method affordance needs --checkpoint', file=sys.stderr)
        return 2
    load_torch_before_gl()
    model = None
    if opts.checkpoint:
        from deft_affordance.model import AffordanceModel
        try:
            model = AffordanceModel.load(opts.checkpoint, allow_random=opts.allow_random)
        except (OSError, ValueError) as exc:
            print(f'prior_gap: {exc}', file=sys.stderr)
            return 2
    results, rows = {}, {}
    for task in tasks:
        t0 = time.monotonic()
        with SimEvaluator(task, SimEvalSettings.from_graph(), model=model) as ev:
            rows[task] = [measure(ev, eval_seed(k), opts.split, opts.method)
                          for k in range(opts.trials)]
        results[task] = summarise(rows[task])
        print(f'[{task}: {opts.trials} {opts.split} configurations in '
              f'{time.monotonic() - t0:.0f} s]', file=sys.stderr, flush=True)
    print(f"{opts.method} prior against the robot's nominal grasp, medians over {opts.trials} "
          f'{opts.split} configurations per task:')
    print(table(results))
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps({'method': opts.method, 'split': opts.split,
                                        'checkpoint': opts.checkpoint, 'summary': results,
                                        'rows': rows}, indent=1))
        print(f'written {opts.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
