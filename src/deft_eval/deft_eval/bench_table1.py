"""
The paper's Table 1 in the simulated twin: real-world only vs affordance prior only vs DEFT.

    python -m deft_eval.bench_table1 --out results/bench.json --trials 10 --episodes 12 \
        --warmup 4 [--checkpoint model.pt]                                  (part of `make bench`)

For every task of deft_sim.tasks.TASK_SPECS and both placement splits (`train`: the placement
distribution the labels were drawn from, on other placements; `test`: the held-out
distribution), `--trials` placements (seeds disjoint from the labels) are perceived once and run
with three methods (deft_eval.sim_eval):

- real-world only: the heuristic prior (box centre, random wrist yaw, half-closed hand) + CEM;
- prior only: the affordance model's prior, executed once;
- DEFT: the affordance model's prior + CEM.

CEM runs N = `--episodes` episodes on the placement (the first M = `--warmup` from the initial
D, E = `--elites`), then the final mean of D is executed once: that execution's success counts
(the paper: N = 30, M = 10). The heuristic prior alone is executed too, for
`affordance_vs_heuristic`. Without `--checkpoint`, the model of the affordance recipe in
`--cache` is used, trained there first (deft_affordance_recipe) when absent.

Merged into the JSON file: `sim_table1` {task: {method: {split: success rate}}} and
`affordance_vs_heuristic` {task and "mean": {prior_only, heuristic_only}} (held-out split).
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from deft_common.bench_io import merge_results  # noqa: F401 (bench_paper and bench_bag take it from here)

METHODS = ('real_world_only', 'prior_only', 'deft')
TITLES = {'real_world_only': 'Real-world only', 'prior_only': 'Prior only', 'deft': 'DEFT'}
SPLITS = ('train', 'test')


def default_cache() -> Path:
    """Return the recipe's default cache directory ($ROS_HOME/deft/affordance_recipe)."""
    return Path(os.environ.get('ROS_HOME', Path.home() / '.ros')) / 'deft' / 'affordance_recipe'


def run_task(task: str, checkpoint: str, trials: int, episodes: int, warmup: int, elites: int,
             retargeting_config: str = '', splits: Sequence[str] = SPLITS,
             threads: int = 1) -> Dict[str, object]:
    """
    Run every method on `trials` placements of each split of one task (one process).

    Return {'successes': {method: {split: [bool]}}, 'heuristic_only': {split: [bool]},
    'rewards': ..., 'seconds': float}.
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')
    import torch
    import torch._dynamo  # noqa: F401 - before any GL context (sim_eval.load_torch_before_gl)

    from deft_affordance.model import AffordanceModel
    from deft_eval.sim_eval import SimEvalSettings, SimEvaluator, eval_seed

    torch.set_num_threads(max(1, threads))
    t0 = time.monotonic()
    model = AffordanceModel.load(checkpoint, allow_random=True)
    methods = METHODS + ('heuristic_only',)
    success = {m: {s: [] for s in splits} for m in methods}
    reward = {m: {s: [] for s in splits} for m in methods}
    changes = {'retargeting_config': retargeting_config} if retargeting_config else {}
    with SimEvaluator(task, SimEvalSettings.from_graph(**changes), model=model) as ev:
        for split in splits:
            for k in range(trials):
                seed = eval_seed(k)
                scene = ev.perceive(seed, split)
                priors = {}
                for method in ('affordance', 'heuristic'):
                    try:
                        priors[method] = ev.prior(method, scene, seed)
                    except ValueError:
                        priors[method] = None
                runs = {}
                for name, method in (('prior_only', 'affordance'),
                                     ('heuristic_only', 'heuristic')):
                    prior = priors[method]
                    runs[name] = ev.execute_prior(prior, seed, split) if prior else (0.0, False)
                for name, method in (('real_world_only', 'heuristic'), ('deft', 'affordance')):
                    out = ev.fine_tune(priors[method], seed, split, episodes, warmup, elites,
                                       cem_seed=seed)
                    runs[name] = (out.reward, out.success)
                for name, (r, ok) in runs.items():
                    success[name][split].append(bool(ok))
                    reward[name][split].append(round(float(r), 4))
    return {'task': task, 'successes': success, 'rewards': reward,
            'seconds': time.monotonic() - t0}


def rates(results: Dict[str, Dict[str, object]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Return {task: {method: {split: success rate}}} of run_task results (heuristic too)."""
    return {task: {m: {s: float(np.mean(v)) if v else float('nan') for s, v in per.items()}
                   for m, per in r['successes'].items()} for task, r in results.items()}


def format_table(table: Dict[str, Dict[str, Dict[str, float]]],
                 splits: Sequence[str] = SPLITS) -> str:
    """Format Table 1: rows = tasks (and the mean), columns = method x split success rates."""
    head1 = f'{"":<14}' + ''.join(f'{TITLES[m]:^{10 * len(splits)}}' for m in METHODS)
    head2 = f'{"task":<14}' + ''.join(f'{s:>10}' for _ in METHODS for s in splits)
    lines = [head1, head2]
    for task, per in table.items():
        lines.append(f'{task:<14}' + ''.join(f'{per[m][s]:>10.0%}' for m in METHODS
                                             for s in splits))
    means = {m: {s: float(np.mean([per[m][s] for per in table.values()])) for s in splits}
             for m in METHODS}
    lines.append(f'{"mean":<14}' + ''.join(f'{means[m][s]:>10.0%}' for m in METHODS
                                           for s in splits))
    return '\n'.join(lines)


def bench_entries(table: Dict[str, Dict[str, Dict[str, float]]], trials: int, episodes: int,
                  warmup: int, elites: int, checkpoint: str, seconds: float,
                  split: str = 'test') -> Dict[str, object]:
    """Return the bench.json entries `sim_table1` and `affordance_vs_heuristic`."""
    sim_table1 = {task: {m: {s: round(v, 4) for s, v in per[m].items()} for m in METHODS}
                  for task, per in table.items()}
    versus = {task: {'prior_only': round(per['prior_only'][split], 4),
                     'heuristic_only': round(per['heuristic_only'][split], 4)}
              for task, per in table.items()}
    versus['mean'] = {k: round(float(np.mean([v[k] for t, v in versus.items()])), 4)
                      for k in ('prior_only', 'heuristic_only')}
    cem = f'CEM N={episodes}, M={warmup}, E={elites}, success of the final mean executed once'
    return {
        'sim_table1': {
            'value': sim_table1, 'unit': 'success rate per task/method/split',
            'detail': (f"{trials} placements per task and split (train: the labels' "
                       'placement distribution, other seeds; test: held-out distribution); '
                       'real_world_only = heuristic prior + CEM, prior_only = affordance model '
                       f'prior, deft = affordance prior + CEM; {cem}; model {checkpoint}; '
                       f'{seconds:.0f} s on {os.cpu_count()} cores')},
        'affordance_vs_heuristic': {
            'value': versus, 'unit': 'success rate, prior executed once (no fine-tuning)',
            'detail': (f'{split} split, {trials} placements per task: the affordance model '
                       'prior vs the heuristic prior (box centre, random wrist, half-closed '
                       'hand); goal: prior_only > heuristic_only on the mean')},
    }


def prior_only_entry(results: Dict[str, Dict[str, object]], trials: int,
                     checkpoint: str) -> Dict[str, object]:
    """
    Return the bench.json entry `prior_only_success`.

    Per task and split: the success rate of the affordance prior executed once and of the
    heuristic prior, with 95 % Wilson intervals.
    """
    from deft_common.stats import rate
    value = {task: {name: {s: rate(v) for s, v in r['successes'][name].items()}
                    for name in ('prior_only', 'heuristic_only')}
             for task, r in results.items()}
    return {'prior_only_success': {
        'value': value, 'unit': 'success rate per split, 95 % Wilson interval, n',
        'detail': (f'{trials} placements per task and split, the prior executed once (no '
                   'fine-tuning): prior_only = the affordance model trained on the simulated '
                   'human labels (retargeted to the robot hand), heuristic_only = box centre, '
                   f'random wrist, half-closed hand; model {checkpoint}')}}


def ensure_checkpoint(checkpoint: Optional[Path], cache: Path) -> Path:
    """Return the model to use: --checkpoint, else the recipe's in cache (trained if absent)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise ValueError(f'checkpoint {checkpoint} not found')
        return checkpoint
    model = cache / 'model.pt'
    if not model.is_file():
        from deft_eval import recipe
        print(f'no checkpoint: training one with {recipe.PROG} --out {cache}', flush=True)
        if recipe.main(['--out', str(cache)]) != 0 or not model.is_file():
            raise ValueError(f'{recipe.PROG} did not produce {model}')
    return model


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark, print Table 1 and merge the results into the JSON file."""
    parser = argparse.ArgumentParser(prog='python -m deft_eval.bench_table1',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('results/bench.json'))
    parser.add_argument('--checkpoint', type=Path, default=None,
                        help="affordance model (default: the recipe's in --cache)")
    parser.add_argument('--cache', type=Path, default=default_cache(),
                        help='recipe output directory used without --checkpoint')
    parser.add_argument('--tasks', default='', help='comma-separated task ids (default: all)')
    parser.add_argument('--trials', type=int, default=10, help='placements per task and split')
    parser.add_argument('--episodes', type=int, default=12, help='CEM episodes N')
    parser.add_argument('--warmup', type=int, default=4, help='CEM warm-up episodes M')
    parser.add_argument('--elites', type=int, default=3, help='CEM elites E')
    parser.add_argument('--jobs', type=int, default=2, help='tasks run in parallel processes')
    parser.add_argument('--retargeting-config', default='',
                        help="MANO -> hand retargeting YAML (default: the sim graph's)")
    opts = parser.parse_args(argv)
    if opts.trials < 1 or not 1 <= opts.warmup <= opts.episodes or \
            not 1 <= opts.elites <= opts.episodes or opts.jobs < 1:
        parser.error('need --trials >= 1, 1 <= --warmup <= --episodes, 1 <= --elites <= '
                     '--episodes, --jobs >= 1')
    from deft_sim.tasks import TASK_SPECS
    tasks = [t for t in opts.tasks.split(',') if t] if opts.tasks else list(TASK_SPECS)
    unknown = [t for t in tasks if t not in TASK_SPECS]
    if unknown:
        parser.error(f'unknown tasks {unknown}; known: {", ".join(TASK_SPECS)}')
    t0 = time.monotonic()
    try:
        checkpoint = ensure_checkpoint(opts.checkpoint, opts.cache)
    except ValueError as exc:
        print(f'bench_table1: error: {exc}', file=sys.stderr)
        return 2
    print(f'Table 1 in the twin: {len(tasks)} tasks x 2 splits x {opts.trials} placements, CEM '
          f'N={opts.episodes} M={opts.warmup} E={opts.elites}, model {checkpoint}, '
          f'{opts.jobs} processes', flush=True)
    args = (str(checkpoint), opts.trials, opts.episodes, opts.warmup, opts.elites,
            opts.retargeting_config)
    results: Dict[str, Dict[str, object]] = {}
    if opts.jobs == 1:
        for task in tasks:
            results[task] = run_task(task, *args)
            print(f'  {task}: {results[task]["seconds"]:.0f} s', flush=True)
    else:
        with ProcessPoolExecutor(opts.jobs, mp_context=multiprocessing.get_context('spawn')) \
                as pool:
            futures: List = [(t, pool.submit(run_task, t, *args)) for t in tasks]
            for task, future in futures:
                results[task] = future.result()
                print(f'  {task}: {results[task]["seconds"]:.0f} s', flush=True)
    table = rates(results)
    print(format_table(table), flush=True)
    entries = bench_entries(table, opts.trials, opts.episodes, opts.warmup, opts.elites,
                            str(checkpoint), time.monotonic() - t0)
    entries.update(prior_only_entry(results, opts.trials, str(checkpoint)))
    merge_results(opts.out, entries)
    versus = entries['affordance_vs_heuristic']['value']['mean']
    print(f'affordance prior {versus["prior_only"]:.0%} vs heuristic '
          f'{versus["heuristic_only"]:.0%} (held-out, prior only) -> {opts.out} '
          f'({time.monotonic() - t0:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
