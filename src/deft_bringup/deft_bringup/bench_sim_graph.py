"""
Wall time of episodes through the real sim graph, on its simulated clock.

    python -m deft_bringup.bench_sim_graph --out results/bench.json [--episodes 5]

- `sim_graph_episode_wall_s`: the six nodes of the sim profile as processes (the MuJoCo twin,
  like `make demo`), one fine_tune per task of the twin with `--episodes` episodes (reward sim);
  an episode's wall time is the time between the ends of consecutive episodes (perceive,
  predict, approach, grasp, post_grasp, settle and reward, hand open and arm home, scene reset),
  the first episode of each run left out (it also waits for the run's first reset). Median per
  task and over all tasks (goal: at most 1 s).
  A run that fails (e.g. the fake prior's post-grasp trajectory leaving the workspace) is
  reported under `failed_runs`, not measured.
- `demo_fine_tune_wall_s`: the demo's fine_tune (`--demo-task`, by default the demo's "open the
  drawer"; N=30, M=10, E=5, CEM, reward sim) from the goal to its result, no model training:
  the affordance prior of `--demo-checkpoint`, by default the demo's cached model
  ($ROS_HOME/deft/demo_prior/<task>/model.pt, made by `make demo`) or else the recipe's
  ($ROS_HOME/deft/affordance_recipe/model.pt, made by bench_paper), or else the fake prior; the
  result says which. Median over `--demo-repeats` fresh graphs (goal: at most 60 s).
- `sim_graph_phase_wall_s`: median wall time per phase of an episode (where the time goes).
- `sim_graph_cpu_s_per_episode`: CPU seconds (user + system, /proc/<pid>/stat) each node process
  spent per episode of the task runs, goal to result, median over the tasks (where the cores go).

Results are merged into the JSON file with the machine's load average (1 min) before and after.
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import rclpy

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import start_graph
from deft_common.bench_io import cpu_seconds, merge_results
from deft_interfaces.action import FineTune

EPISODE_GOAL_S = 1.0
DEMO_GOAL_S = 60.0
STARTUP_S = 60.0


def fine_tune_run(task: str, sim_task: str, episodes: int, warmup: int, elites: int,
                  log_root: Path, run_root: Path, run_id: str,
                  sim_params: Optional[Dict[str, object]] = None,
                  checkpoint: str = '') -> Dict[str, object]:
    """Start the sim graph for `sim_task`, run one fine_tune; return its wall times."""
    overrides = {'sim': {'mujoco_task': sim_task, **(sim_params or {})},
                 'episode': {'run_root': str(run_root)}}
    if checkpoint:  # the demo's learned prior (random-init encoders: the recipe's models)
        overrides['affordance'] = {'backend': 'model', 'checkpoint': checkpoint,
                                   'allow_random': True}
    graph = start_graph(f'bench-{sim_task}', log_root, 'sim', overrides=overrides)
    with graph:
        client = EpisodeClient(name=f'bench_client_{run_id}'.replace('-', '_'))
        try:
            if not client.wait_for_server(STARTUP_S) or not client.wait_for_camera(STARTUP_S):
                raise RuntimeError(f'the sim graph did not come up: {graph.exited()}')
            ends: List[float] = []
            phases: Dict[str, List[float]] = {}
            last = {'phase': None, 't': 0.0}

            def feedback(fb):
                now = time.monotonic()
                if last['phase'] is not None and fb.phase != last['phase']:
                    phases.setdefault(last['phase'], []).append(now - last['t'])
                if fb.phase != last['phase']:
                    last.update(phase=fb.phase, t=now)
                if fb.phase in ('warmup', 'refit'):
                    ends.append(now)
            goal = FineTune.Goal(task=task, episodes=episodes, warmup_episodes=warmup,
                                 elites=elites, reward_source='sim', optimizer='cem',
                                 prior='affordance', run_id=run_id,
                                 seed=0)
            cpu0 = {n: cpu_seconds(p.pid) for n, p in graph.procs.items()}
            t0 = time.monotonic()
            outcome = client.fine_tune(goal, 60.0 + 30.0 * episodes, on_feedback=feedback)
            total = time.monotonic() - t0
            cpu = {n: (cpu_seconds(p.pid) - cpu0[n]) / episodes for n, p in graph.procs.items()}
        finally:
            client.close()
    if outcome.result is None or not outcome.result.success:
        message = outcome.result.message if outcome.result is not None else 'no result'
        raise RuntimeError(f'fine_tune {sim_task} failed: {message}')
    return {'total': total, 'episodes': [b - a for a, b in zip(ends, ends[1:])],
            'phases': phases, 'rewards': list(outcome.result.rewards), 'cpu': cpu}


def demo_checkpoint(task: str, given: str) -> str:
    """Return the checkpoint of the demo's prior: given, else a cached model, else ''."""
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f'--demo-checkpoint {given}: no such file')
        return str(Path(given).absolute())
    home = Path(os.environ.get('ROS_HOME', Path.home() / '.ros')) / 'deft'
    for path in (home / 'demo_prior' / task / 'model.pt',
                 home / 'affordance_recipe' / 'model.pt'):
        if path.is_file():
            return str(path)
    return ''


def load_average() -> float:
    """Return the 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print, and merge into the bench JSON when --out is given."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--episodes', type=int, default=5, help='episodes per task (>= 2)')
    parser.add_argument('--demo-repeats', type=int, default=1,
                        help="runs of the demo's 30-episode fine_tune (0: skip it)")
    parser.add_argument('--demo-task', default='open_drawer',
                        help="twin task of the demo's fine_tune (default: the demo's)")
    parser.add_argument('--demo-checkpoint', default='',
                        help="affordance model of the demo's prior (default: a cached one, see "
                        'above; none: the fake prior)')
    parser.add_argument('--tasks', default='', help='comma-separated twin tasks (default all)')
    parser.add_argument('--sim-param', action='append', default=[], metavar='NAME=VALUE',
                        help='a sim node parameter for every run (a JSON value), e.g. '
                        'max_peer_lag=0.2; the results then say so')
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    try:
        sim_params = {k: json.loads(v) for k, v in (p.split('=', 1) for p in opts.sim_param)}
    except ValueError:
        parser.error('--sim-param takes NAME=VALUE with a JSON value')
    if opts.episodes < 2 or opts.demo_repeats < 0:
        parser.error('--episodes must be >= 2 and --demo-repeats >= 0')
    from deft_sim.tasks import TASK_SPECS
    tasks = [t for t in opts.tasks.split(',') if t] or list(TASK_SPECS)
    unknown = sorted((set(tasks) | {opts.demo_task}) - set(TASK_SPECS))
    if unknown:
        parser.error(f'unknown tasks {unknown}; known: {", ".join(TASK_SPECS)}')
    try:
        checkpoint = demo_checkpoint(opts.demo_task, opts.demo_checkpoint)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    prior = f'the affordance model {checkpoint}' if checkpoint else 'the fake prior'
    root = Path(tempfile.mkdtemp(prefix='deft_bench_graph_'))
    log_root = Path(os.environ.get('ROS_HOME', root)) / 'bench-logs'
    rclpy.init()
    load_before = load_average()
    per_task, phases, demo, failed, cpu = {}, {}, [], {}, {}
    try:
        for name in tasks:
            try:
                run = fine_tune_run(TASK_SPECS[name].text, name, opts.episodes,
                                    min(2, opts.episodes - 1), 1, log_root, root, f'task-{name}',
                                    sim_params)
            except RuntimeError as exc:  # reported, not measured
                failed[name] = str(exc)
                print(f'{name}: {exc}', flush=True)
                continue
            per_task[name] = run['episodes']
            for phase, times in run['phases'].items():
                phases.setdefault(phase, []).extend(times)
            for node, seconds in run['cpu'].items():
                cpu.setdefault(node, []).append(seconds)
            print(f'{name}: episodes {", ".join(f"{t:.2f}" for t in run["episodes"])} s; '
                  f'rewards {", ".join(f"{r:.2f}" for r in run["rewards"])}', flush=True)
        for k in range(opts.demo_repeats):
            run = fine_tune_run(TASK_SPECS[opts.demo_task].text, opts.demo_task, 30, 10, 5,
                                log_root, root, f'demo-{k}', sim_params, checkpoint)
            demo.append(run['total'])
            rewards = run['rewards']
            print(f'demo fine_tune {k + 1} ({opts.demo_task}, {prior}): {run["total"]:.1f} s, '
                  'mean reward first 10 '
                  f'{statistics.mean(rewards[:10]):.3f}, last 10 '
                  f'{statistics.mean(rewards[-10:]):.3f}', flush=True)
    finally:
        rclpy.try_shutdown()
    load = {'load_average_1min_before': load_before, 'load_average_1min_after': load_average()}
    if sim_params:
        load['sim_params'] = sim_params
    times = [t for v in per_task.values() for t in v]
    results = {
        'sim_graph_episode_wall_s': {
            'value': round(statistics.median(times), 3), 'unit': 's',
            'goal': f'<= {EPISODE_GOAL_S}', **load,
            'per_task': {k: round(statistics.median(v), 3) for k, v in per_task.items()},
            'failed_runs': failed,
            'detail': (f'median over {len(times)} episodes ({opts.episodes - 1} per task after '
                       'the first) of a fine_tune per twin task through the six node processes '
                       'of the sim profile on sim time: time between consecutive episode ends')},
        'sim_graph_phase_wall_s': {
            'value': {k: round(statistics.median(v), 3) for k, v in phases.items()},
            'unit': 's', **load, 'detail': 'median wall time of each feedback phase'},
        'sim_graph_cpu_s_per_episode': {
            'value': {k: round(statistics.median(v), 3) for k, v in cpu.items()},
            'total': round(sum(statistics.median(v) for v in cpu.values()), 3) if cpu else None,
            'unit': 'CPU s', **load,
            'detail': ('user + system CPU seconds of each node process per episode of the task '
                       'runs (goal to result, warm-up included), median over the tasks')},
    }
    if demo:
        results['demo_fine_tune_wall_s'] = {
            'value': round(statistics.median(demo), 2), 'unit': 's',
            'goal': f'<= {DEMO_GOAL_S}', **load,
            'task': opts.demo_task, 'prior': prior,
            'detail': (f"median over {len(demo)} runs of the demo's fine_tune ({opts.demo_task}, "
                       f'N=30, M=10, E=5, CEM, sim reward, {prior}) through the sim graph, goal '
                       'to result, no model training')}
    print(json.dumps(results, indent=2))
    if opts.out is not None:
        merge_results(opts.out, results)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
