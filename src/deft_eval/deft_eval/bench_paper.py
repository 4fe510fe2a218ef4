"""
The paper's Table 1 in the twin with the paper's protocol (pi zero-shot), and its Figure 4.

    python -m deft_eval.bench_paper --out results/bench.json --seeds 3    (part of `make bench`)

For each task of deft_sim.tasks.TASK_SPECS and each seed 0..`--seeds`-1, one process runs
deft_eval.paper_protocol.run_protocol: DEFT (the recipe's affordance prior, N fine-tuning
episodes on fresh train configurations, M warm-up, E elites, then pi = the cVAE trained on the
run's top ten episodes) and real-world only (the heuristic prior, the same), each pi executed
zero-shot on `--eval` train and `--eval` test configurations; the affordance prior and the
heuristic prior executed as they are on the same configurations. Jobs (task, seed) run on
`--jobs` processes. Without `--checkpoint` the recipe's model in `--cache` is used (trained there
first when absent, as bench_table1 does).

Merged into the JSON file:
- `paper_table1`: per task and method (deft, real_world_only, affordance_only) and split, the
  success rate averaged over seeds with its 95 % Student-t interval over seeds, the per-seed
  rates, the pooled rate with its Wilson interval, and the paper's real-robot figure beside it;
- `prior_only_success`: per task and split, the affordance and heuristic priors executed once,
  pooled over seeds, with 95 % Wilson intervals (the key bench_table1 wrote);
- `paper_figure4`: where Figure 4 was written (PNG and CSV, deft_cem.figure4 over the run
  directories under `--runs`, which stay for `deft_report`); every episode's result is in
  `<runs>/results.json`.
"""

import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
import json
import multiprocessing
import os
from pathlib import Path
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_eval.bench_table1 import default_cache, ensure_checkpoint, merge_results
from deft_eval.paper_protocol import FINE_TUNED, METHODS, SPLITS, ProtocolSettings

TABLE_METHODS = ('deft', 'real_world_only', 'affordance_only')
TITLES = {'deft': 'DEFT (pi)', 'real_world_only': 'Real-world only (pi)',
          'affordance_only': 'Affordance only'}
# The paper's real-robot Table 1 (arXiv 2310.19797): not found in the stored sources searched
# while this bench was written; None until someone enters them from the paper itself.
PAPER_TABLE1: Dict[str, Dict[str, Dict[str, Optional[float]]]] = {
    task: {m: dict.fromkeys(SPLITS) for m in TABLE_METHODS}
    for task in ('pick_cup', 'pour_cup', 'pick_spoon', 'open_drawer', 'scoop_grape',
                 'stir_spoon')}
PAPER_NOTE = ("the paper's real-robot numbers (arXiv 2310.19797, Table 1) could not be read from "
              'the sources available to this project; null, never guessed')


def run_job(task: str, seed: int, checkpoint: str, settings: Dict[str, object], root: str,
            table2: bool = True, threads: int = 1,
            methods: Sequence[str] = METHODS) -> Dict[str, object]:
    """
    Run the protocol of one task and seed in this process (a fresh world and model).

    With `table2`, a task of paper_table2.TASKS then runs its Table 2 ablations (`table2` key).
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from deft_common.torch_threads import configure_torch_threads
    configure_torch_threads(threads)
    import torch._dynamo  # noqa: F401 - before any GL context (sim_eval.load_torch_before_gl)

    from deft_affordance.model import AffordanceModel
    from deft_eval import paper_table2
    from deft_eval.paper_protocol import run_protocol
    from deft_eval.sim_eval import SimEvalSettings, SimEvaluator
    from deft_policy.features import ResNetFeatures

    t0 = time.monotonic()
    s = ProtocolSettings(**settings)
    task_root = Path(root) / task
    table2 = table2 and task in paper_table2.TASKS and 'deft' in methods
    for name in list(FINE_TUNED) + list(paper_table2.REWARDS):  # every number is from this run
        shutil.rmtree(task_root / f'{name}-seed{seed}', ignore_errors=True)
    model = AffordanceModel.load(checkpoint, allow_random=True)
    extractor = ResNetFeatures(s.resnet_weights)

    def progress(line: str) -> None:
        if ' episode ' not in line:  # per-method lines only
            print(f'  [{time.monotonic() - t0:6.0f} s] {line}', flush=True)

    with SimEvaluator(task, SimEvalSettings.from_graph(), model=model) as ev:
        out = run_protocol(ev, task_root, seed, s, methods, extractor, progress)
        if table2:
            out['table2'] = paper_table2.run_table2(
                ev, task_root, seed, s, Path(out['methods']['deft']['run_dir']),
                extractor=extractor, progress=progress)
    out['seconds']['total'] = round(time.monotonic() - t0, 1)
    return out


def _rate(values: Sequence[bool]) -> float:
    return float(np.mean(values)) if len(values) else float('nan')


def summarise(runs: Sequence[Tuple[int, Sequence[bool]]]) -> Dict[str, object]:
    """
    Return the cell of one method and split from [(seed, successes), ...].

    `mean` of the per-seed success rates, `ci95` their Student-t interval (clipped to [0, 1];
    None with one seed), `per_seed`, `seeds`, and `pooled` (all episodes: rate, Wilson
    interval, n).
    """
    from deft_common.stats import mean_interval, rate

    runs = sorted(runs, key=lambda r: r[0])
    per_seed = [_rate(v) for _, v in runs]
    mean, band = mean_interval(per_seed)
    return {'mean': round(mean, 4),
            'ci95': [round(max(0.0, band[0]), 4), round(min(1.0, band[1]), 4)] if band else None,
            'per_seed': [round(v, 4) for v in per_seed], 'seeds': [seed for seed, _ in runs],
            'pooled': rate([ok for _, v in runs for ok in v])}


def aggregate(results: Sequence[Dict[str, object]], kind: str = 'methods'
              ) -> Dict[str, Dict[str, Dict[str, object]]]:
    """
    Return {task: {method: {split: summarise(...)}}} of results over their seeds.

    The results are run_protocol's (kind 'methods') or run_table2's ('rewards', 'policies').
    """
    by_task: Dict[str, List[Dict[str, object]]] = {}
    for r in results:
        by_task.setdefault(r['task'], []).append(r)
    table: Dict[str, Dict[str, Dict[str, object]]] = {}
    for task, runs in by_task.items():
        names = [m for m in runs[0][kind] if all(m in r[kind] for r in runs)]
        table[task] = {m: {split: summarise([(r['seed'], r[kind][m][split]) for r in runs])
                           for split in SPLITS} for m in names}
    return table


def format_table(table: Dict[str, Dict[str, Dict[str, object]]]) -> str:
    """Format Table 1: rows = tasks and the mean, columns = method x split (mean [95 % CI])."""
    width = 17
    head1 = f'{"":<12}' + ''.join(f'{TITLES[m]:^{2 * width}}' for m in TABLE_METHODS)
    head2 = f'{"task":<12}' + ''.join(f'{s:>{width}}' for _ in TABLE_METHODS for s in SPLITS)
    lines = [head1, head2]

    def cell(v: Dict[str, object]) -> str:
        ci = v['ci95']
        band = f' [{ci[0]:.0%}-{ci[1]:.0%}]' if ci else ''
        return f'{v["mean"]:.0%}{band}'

    for task, per in table.items():
        lines.append(f'{task:<12}' + ''.join(
            f'{cell(per[m][s]) if m in per else "-":>{width}}' for m in TABLE_METHODS
            for s in SPLITS))
    means = mean_row(table)
    lines.append(f'{"mean":<12}' + ''.join(
        f'{means[m][s]:>{width}.0%}' if means[m][s] is not None else f'{"-":>{width}}'
        for m in TABLE_METHODS for s in SPLITS))
    return '\n'.join(lines)


def mean_row(table: Dict[str, Dict[str, Dict[str, object]]]
             ) -> Dict[str, Dict[str, Optional[float]]]:
    """Return {method: {split: mean over tasks of the per-task means}} (None when absent)."""
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for m in TABLE_METHODS:
        out[m] = {}
        for s in SPLITS:
            values = [per[m][s]['mean'] for per in table.values() if m in per]
            out[m][s] = round(float(np.mean(values)), 4) if values else None
    return out


def bench_entries(results: Sequence[Dict[str, object]], settings: ProtocolSettings,
                  checkpoint: str, seconds: float, figure: Dict[str, str],
                  load: Sequence[float]) -> Dict[str, object]:
    """Return the bench.json entries paper_table1, prior_only_success and paper_figure4."""
    from deft_common.stats import rate

    table = aggregate(results)
    value = {task: {m: {s: dict(per[m][s], paper=PAPER_TABLE1.get(task, {}).get(m, {}).get(s))
                        for s in SPLITS} for m in TABLE_METHODS if m in per}
             for task, per in table.items()}
    means = mean_row(table)
    deft_test = means['deft']['test']
    aff_test = means['affordance_only']['test']
    seeds = sorted({r['seed'] for r in results})
    s = settings
    protocol = (f'seeds {seeds}; fine-tuning N={s.episodes}, M={s.warmup}, E={s.elites} (CEM, '
                'the twin reward), each episode on a fresh train configuration; pi = '
                f'{s.policy_model} on the top {s.policy_elites} episodes of the run, '
                f'c = (phi(I0) ResNet-18 random weights, xi), {s.policy_epochs} epochs; pi '
                f'executed zero-shot (z = 0) on {s.eval_configs} train + {s.eval_configs} test '
                'configurations per seed (disjoint from the fine-tuning ones; test: unseen '
                'instances and placements); affordance_only = the prior executed as it is on '
                f'the same configurations; model {checkpoint}')
    pooled = {}
    for r in results:
        for name in ('affordance_only', 'heuristic_only'):
            if name not in r['methods']:
                continue
            for split in SPLITS:
                pooled.setdefault(r['task'], {}).setdefault(name, {}).setdefault(split, []) \
                    .extend(r['methods'][name][split])
    prior_only = {task: {('prior_only' if name == 'affordance_only' else name):
                         {split: rate(v) for split, v in per.items()}
                         for name, per in by.items()} for task, by in pooled.items()}
    return {
        'paper_table1': {
            'value': value, 'mean': means,
            'targets': {'deft_test_ge_paper': None,
                        'deft_test_over_affordance_only': (round(deft_test / aff_test, 3)
                                                           if aff_test else None),
                        'deft_test_mean': deft_test, 'affordance_only_test_mean': aff_test},
            'unit': 'success rate: mean over seeds [95 % t interval over seeds]',
            'detail': (f'{protocol}; {seconds:.0f} s on {os.cpu_count()} cores, load average '
                       f'{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end'),
            'paper_note': PAPER_NOTE},
        'prior_only_success': {
            'value': prior_only, 'unit': 'success rate per split, 95 % Wilson interval, n',
            'detail': ("the prior executed once (no fine-tuning) on the paper protocol's "
                       f'evaluation configurations ({s.eval_configs} per split and seed, seeds '
                       f'{seeds}): prior_only = the affordance model trained on the simulated '
                       'human demonstrations (retargeted to the robot hand), heuristic_only = '
                       f'box centre, random wrist, half-closed hand; model {checkpoint}')},
        'paper_figure4': {'value': figure, 'unit': 'files',
                          'detail': 'reward per episode, DEFT vs real-world only, mean over '
                                    f'seeds {seeds} with a 95 % t band (deft_cem.figure4)'},
    }


def table2_entry(results: Sequence[Dict[str, object]], seconds: float) -> Dict[str, object]:
    """
    Return the bench.json entry paper_table2: per task, the reward and the policy ablations.

    Each cell is summarise() of pi's zero-shot success; the references are Table 1's DEFT
    (`sim`: the twin's reward; `cvae`: the paper's pi) of the same seeds. Reward variants also
    give the twin's success rate during their fine-tuning and the embedding scale.
    """
    from deft_eval import paper_table2

    with2 = [r['table2'] for r in results if 'table2' in r]
    if not with2:
        return {}
    tasks = sorted({r['task'] for r in with2})
    ref = aggregate([r for r in results if r['task'] in tasks])
    rewards, policies = aggregate(with2, 'rewards'), aggregate(with2, 'policies')
    value: Dict[str, object] = {}
    for task in tasks:
        tuned = {}
        for r in (r for r in with2 if r['task'] == task):
            for name, entry in r['rewards'].items():
                tuned.setdefault(name, []).append(
                    {'seed': r['seed'], 'fine_tune_success': round(_rate(
                        entry['fine_tune_success']), 4), 'scale': entry.get('scale')})
        value[task] = {
            'rewards': dict({'sim': ref[task]['deft']}, **rewards[task]),
            'policies': dict({'cvae': ref[task]['deft']}, **policies[task]),
            'fine_tuning': tuned}
    means = {kind: {name: {split: round(float(np.mean([value[t][kind][name][split]['mean']
                                                        for t in tasks])), 4)
                           for split in SPLITS}
                    for name in value[tasks[0]][kind]}
             for kind in ('rewards', 'policies')}
    return {'paper_table2': {
        'value': value, 'mean': means, 'paper': None, 'paper_note': PAPER_NOTE,
        'unit': "pi's zero-shot success rate: mean over seeds [95 % t interval over seeds]",
        'detail': ('rewards: CEM told sim (the twin reward: reference), embedding_resnet18 / '
                   'embedding_r3m (EmbeddingReward of the final frame to a goal frame; '
                   'ResNet-18 and ResNet-50, the R3M architecture, both with seeded RANDOM '
                   'weights: no pretrained weights here), operator (the twin reward + '
                   f'N(0, {paper_table2.OPERATOR_NOISE}^2) rounded to '
                   f'{paper_table2.OPERATOR_STEP}, clipped to 0..1); pi = cvae; success always '
                   "the twin's. policies on the DEFT run: cvae (reference), mlp, transformer, "
                   'direct (MLP phi(I0) -> xi + delta), elite_mean (the mean residual of the top '
                   f'episodes everywhere); {seconds:.0f} s')}}


def format_table2(entry: Dict[str, object]) -> str:
    """Format Table 2: a row per ablation, a column per task (test success, mean over seeds)."""
    value = entry['value']
    tasks = list(value)
    lines = [f'{"test success":<26}' + ''.join(f'{t:>14}' for t in tasks) + f'{"mean":>8}']
    for kind, label in (('rewards', 'reward'), ('policies', 'policy')):
        for name in value[tasks[0]][kind]:
            cells = ''.join(f'{value[t][kind][name]["test"]["mean"]:>14.0%}' for t in tasks)
            lines.append(f'{label + " " + name:<26}{cells}'
                         f'{entry["mean"][kind][name]["test"]:>8.0%}')
    return '\n'.join(lines)


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog='python -m deft_eval.bench_paper',
                                description=__doc__.strip().split('\n\n')[0])
    d = ProtocolSettings()
    p.add_argument('--out', type=Path, default=Path('results/bench.json'))
    p.add_argument('--runs', type=Path, default=Path('results/paper_runs'),
                   help='where the run directories go (<runs>/<task>/<method>-seed<k>)')
    p.add_argument('--figure', type=Path, default=Path('results/figure4.png'),
                   help='Figure 4 PNG (the CSV is written beside it)')
    p.add_argument('--checkpoint', type=Path, default=None,
                   help="affordance model (default: the recipe's in --cache)")
    p.add_argument('--cache', type=Path, default=default_cache(),
                   help='recipe output directory used without --checkpoint')
    p.add_argument('--tasks', default='', help='comma-separated task ids (default: all)')
    p.add_argument('--seeds', type=int, default=3, help='protocol seeds 0..seeds-1 per task')
    p.add_argument('--episodes', type=int, default=d.episodes, help='fine-tuning episodes N')
    p.add_argument('--warmup', type=int, default=d.warmup, help='warm-up episodes M')
    p.add_argument('--elites', type=int, default=d.elites, help='CEM elites E')
    p.add_argument('--policy-elites', type=int, default=d.policy_elites,
                   help='best episodes of a run pi is trained on')
    p.add_argument('--policy-epochs', type=int, default=d.policy_epochs)
    p.add_argument('--eval', type=int, default=d.eval_configs,
                   help='evaluation configurations per split and seed')
    p.add_argument('--jobs', type=int, default=2, help='(task, seed) jobs run in parallel')
    p.add_argument('--no-table2', action='store_true',
                   help="skip Table 2's ablations (paper_table2.TASKS after their protocol)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the protocol for every task and seed, print Table 1, write Figure 4 and the JSON."""
    opts = parser().parse_args(argv)
    from deft_sim.tasks import TASK_SPECS
    tasks = [t for t in opts.tasks.split(',') if t] if opts.tasks else list(TASK_SPECS)
    unknown = [t for t in tasks if t not in TASK_SPECS]
    if unknown or opts.seeds < 1 or opts.jobs < 1:
        parser().error(f'need known tasks (unknown: {unknown}; known: {", ".join(TASK_SPECS)}), '
                       '--seeds >= 1 and --jobs >= 1')
    try:
        settings = replace(ProtocolSettings(), episodes=opts.episodes, warmup=opts.warmup,
                           elites=opts.elites, policy_elites=opts.policy_elites,
                           policy_epochs=opts.policy_epochs, eval_configs=opts.eval)
        checkpoint = ensure_checkpoint(opts.checkpoint, opts.cache)
    except ValueError as exc:
        print(f'bench_paper: error: {exc}', file=sys.stderr)
        return 2
    t0 = time.monotonic()
    from deft_eval.paper_table2 import TASKS as TABLE2_TASKS
    # the longest jobs (those with Table 2) first, so the last ones to finish are short
    jobs = sorted(((task, seed) for seed in range(opts.seeds) for task in tasks),
                  key=lambda j: (opts.no_table2 or j[0] not in TABLE2_TASKS, j[1]))
    print(f'Table 1, paper protocol: {len(tasks)} tasks x {opts.seeds} seeds, '
          f'N={settings.episodes} M={settings.warmup} E={settings.elites}, pi on the top '
          f'{settings.policy_elites}, '
          f'{settings.eval_configs}+{settings.eval_configs} evaluation configurations, '
          f'{opts.jobs} processes, model {checkpoint}', flush=True)
    args = (str(checkpoint), asdict(settings), str(opts.runs.resolve()), not opts.no_table2)
    results: List[Dict[str, object]] = []
    with ProcessPoolExecutor(opts.jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
        futures = {pool.submit(run_job, task, seed, *args): (task, seed) for task, seed in jobs}
        for future in as_completed(futures):
            task, seed = futures[future]
            results.append(future.result())
            print(f'{task} seed {seed} done ({results[-1]["seconds"]["total"]:.0f} s; '
                  f'{len(results)}/{len(jobs)} jobs, {time.monotonic() - t0:.0f} s)', flush=True)
    results.sort(key=lambda r: (tasks.index(r['task']), r['seed']))  # table rows in task order
    table = aggregate(results)
    print(format_table(table), flush=True)
    from deft_cem.figure4 import write_figure4
    run_dirs = sorted(Path(r['methods'][m]['run_dir']) for r in results for m in FINE_TUNED
                      if m in r['methods'])
    png, csv = write_figure4(run_dirs, opts.figure)
    entries = bench_entries(results, settings, str(checkpoint), time.monotonic() - t0,
                            {'png': str(png), 'csv': str(csv), 'runs': str(opts.runs)},
                            os.getloadavg())
    entries.update(table2_entry(results, time.monotonic() - t0))
    if 'paper_table2' in entries:
        print(format_table2(entries['paper_table2']), flush=True)
    merge_results(opts.out, entries)
    from deft_common.runs import atomic_write
    atomic_write(opts.runs / 'results.json', json.dumps(results, indent=1) + '\n')  # per episode
    targets = entries['paper_table1']['targets']
    print(f'DEFT pi test mean {targets["deft_test_mean"]:.0%} vs affordance only '
          f'{targets["affordance_only_test_mean"]:.0%}; figure 4 {png}; -> {opts.out} '
          f'({time.monotonic() - t0:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
