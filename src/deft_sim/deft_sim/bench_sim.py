"""
Benchmark of the MuJoCo twin: wall time of one simulated episode and the scripted human grasp.

    python -m deft_sim.bench_sim --out results/bench.json   # part of `make bench`

One episode = reset, render the initial RGB-D frame, the task's nominal grasp and its demonstrated
trajectory tau (waypoints and their wrist turns) run open-loop as the arm would
(tasks.run_scripted: physics only, not real time), the task reward, render the final frame.
`sim_episode_wall_s` is the median over tasks and placements (goal: at most 1 s on these 2-core
machines), `sim_episode_wall_s_per_task` the median per task; `sim_scripted_success` is the
success rate of the nominal grasp per task and split (the upper bound the learned prior aims at).

`twin_task_checks`: per task and split, the success rate (with its 95 % Wilson interval) of the
demonstration and of each cheat of task_checks.CHEATS over `--check-trials` placements that no
test uses (seeds from 3000): the demonstrations should succeed, every cheat should fail.
"""

import argparse
import json
from pathlib import Path
import time
from typing import Dict, Optional, Sequence

import numpy as np

from deft_common.rotations import Transform
from deft_common.stats import rate
from deft_sim.human_labels import load_hand
from deft_sim.kinematic_world import SPLITS, PinholeCamera
from deft_sim.mujoco_world import MujocoSettings, MujocoWorld
from deft_sim.task_checks import CHEATS, KNOWN_TO_PASS, run_check
from deft_sim.tasks import TASK_SPECS, run_scripted

GOAL_S = 1.0
CAMERA_TO_BASE = [0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0]  # the sim profile's camera


def measure(trials: int = 5, width: int = 640, height: int = 480,
            hand_config: str = '') -> Dict[str, object]:
    """Run `trials` episodes per task and split; return wall times and success rates."""
    hand = load_hand(hand_config)
    f = 554.3 * width / 640.0
    camera = PinholeCamera(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)
    times, success, per_task = [], {}, {}
    for name, spec in TASK_SPECS.items():
        world = MujocoWorld(camera, Transform.from_list(CAMERA_TO_BASE), hand,
                            MujocoSettings(task=name))
        try:
            world.render()  # the GL context is made once per world, not per episode
            for split in SPLITS:
                wins = 0
                for seed in range(trials):
                    t0 = time.perf_counter()
                    world.reset(1000 + seed, split)
                    world.render()
                    position, q = spec.grasp_in(world)
                    _, ok = run_scripted(world, position, q, hand.closure(hand.pose(
                        spec.hand_pose)), spec.waypoints, tau_rotations=spec.rotations)
                    world.render()
                    times.append(time.perf_counter() - t0)
                    per_task.setdefault(name, []).append(times[-1])
                    wins += bool(ok)
                success[f'{name}/{split}'] = wins / trials
        finally:
            world.close()
    return {'sim_episode_wall_s': float(np.median(times)), 'episodes': len(times),
            'sim_episode_wall_s_per_task': {k: float(np.median(v)) for k, v in per_task.items()},
            'sim_scripted_success': success, 'image': f'{width}x{height}'}


def task_checks(trials: int = 10, hand_config: str = '', seed0: int = 3000,
                progress=print) -> Dict[str, Dict[str, object]]:
    """Run each task's demonstration and cheats on `trials` placements per split."""
    hand = load_hand(hand_config)
    camera = PinholeCamera(160, 120, 138.575, 138.575, 79.5, 59.5)  # nothing is rendered
    out = {}
    for name, spec in TASK_SPECS.items():
        world = MujocoWorld(camera, Transform.from_list(CAMERA_TO_BASE), hand,
                            MujocoSettings(task=name))
        t0 = time.perf_counter()
        try:
            runs = {'demo': None, **{c.name: c for c in CHEATS[name]}}
            wins = {k: {split: [run_check(world, spec, seed0 + i, split, c)[1]
                            for i in range(trials)] for split in SPLITS}
                    for k, c in runs.items()}
        finally:
            world.close()
        out[name] = {'demo': {s: rate(v) for s, v in wins.pop('demo').items()},
                     'cheats': {k: {s: rate(v) for s, v in per.items()}
                                for k, per in wins.items()},
                     'known_to_pass': sorted(c for t, c in KNOWN_TO_PASS if t == name)}
        worst = max((r['rate'] for k, per in out[name]['cheats'].items() for r in per.values()
                     if (name, k) not in KNOWN_TO_PASS), default=0.0)
        progress(f"  {name}: demo {out[name]['demo']['train']['rate']:.0%} train, "
                 f"{out[name]['demo']['test']['rate']:.0%} test; {len(CHEATS[name])} cheats, "
                 f'the best {worst:.0%} (known to pass: '
                 f"{', '.join(out[name]['known_to_pass']) or 'none'}; "
                 f'{time.perf_counter() - t0:.0f} s)')
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print, and merge into the bench JSON when --out is given."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--trials', type=int, default=5, help='episodes per task and split')
    parser.add_argument('--check-trials', type=int, default=10,
                        help='placements per split of each demonstration and cheat')
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    if opts.trials < 1 or opts.check_trials < 1:
        parser.error('--trials and --check-trials must be >= 1')
    m = measure(opts.trials)
    print(json.dumps(m, indent=2))
    print(f'twin_task_checks ({opts.check_trials} placements per split):')
    checks = task_checks(opts.check_trials)
    if opts.out is not None:
        results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        results['sim_episode_wall_s'] = {
            'value': round(m['sim_episode_wall_s'], 3), 'unit': 's', 'goal': f'<= {GOAL_S}',
            'detail': (f"median over {m['episodes']} episodes ({opts.trials} per task and split "
                       f"of {', '.join(TASK_SPECS)}): reset, {m['image']} RGB-D render, the "
                       'nominal grasp + tau open-loop in MuJoCo, reward, final render')}
        results['sim_episode_wall_s_per_task'] = {
            'value': {k: round(v, 3) for k, v in m['sim_episode_wall_s_per_task'].items()},
            'unit': 's', 'detail': 'median episode wall time per task (as sim_episode_wall_s)'}
        results['sim_scripted_success'] = {
            'value': m['sim_scripted_success'], 'unit': 'success rate per task/split',
            'detail': 'the nominal human grasp of each TaskSpec, executed open-loop'}
        results['twin_task_checks'] = {
            'value': checks, 'unit': 'success rate per split, 95 % Wilson interval, n',
            'detail': (f'per task: the demonstration and each cheat of '
                       f'deft_sim.task_checks.CHEATS on {opts.check_trials} placements per '
                       'split (seeds 3000+, used by no test); demonstrations should succeed, '
                       'cheats fail')}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
