"""
Benchmark `episode_bag_mb`: the size of one demo episode's bag, as the episode node writes it.

The episode is the twin's (MuJoCo, the sim profile's 640 x 480 RGB-D camera): pick_cup's nominal
grasp and tau run open-loop (deft_sim.tasks.run_scripted), the initial frame rendered before
and the final frame after, the hand's 16 joints sampled every 0.02 s of the episode and kept at
the episode node's bag_joint_rate_hz (10 Hz), plus the record. Written with the episode node's
bag_compression (zstd MCAP chunks) and without, so the ratio is measured in the same run.

    python -m deft_eval.bench_bag --out results/bench.json

Goal of the issue: at most 0.5 MB per episode.
"""

import argparse
import os
from pathlib import Path
import sys
import tempfile
from typing import Dict, Optional, Sequence

GOAL_MB = 0.5
TASK = 'pick_cup'


def demo_episode(seed: int = 3):
    """Return (initial Frame, final Frame, joint samples at 10 Hz) of a twin demo episode."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from deft_common.rotations import Transform
    from deft_replay.bag_format import Frame, JointSample
    from deft_sim.human_labels import load_hand
    from deft_sim.kinematic_world import PinholeCamera
    from deft_sim.mujoco_world import MujocoSettings, MujocoWorld
    from deft_sim.tasks import TASK_SPECS, run_scripted

    hand = load_hand('')
    k = [554.3, 0.0, 319.5, 0.0, 554.3, 239.5, 0.0, 0.0, 1.0]  # config/sim.yaml
    camera = PinholeCamera(640, 480, k[0], k[4], k[2], k[5])
    world = MujocoWorld(camera, Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0]), hand,
                        MujocoSettings(task=TASK))
    samples, t0 = [], 1_700_000_000_000_000_000

    class Recording:
        """The world, keeping the hand's joints at 10 Hz of simulated time after each update."""

        def __getattr__(self, name):
            return getattr(world, name)

        def update(self, *args, **kwargs):
            world.update(*args, **kwargs)
            t = t0 + int(world.data.time * 1e9)
            if not samples or t - samples[-1].stamp_ns >= 100_000_000:
                samples.append(JointSample(t, list(hand.joint_names),
                                           world.hand_positions().tolist()))

    try:
        world.reset(seed, 'train')
        rgb0, depth0 = world.render()
        spec = TASK_SPECS[TASK]
        run_scripted(Recording(), *spec.grasp_in(world), 1.0, spec.waypoints,
                     tau_rotations=spec.rotations)
        rgb1, depth1 = world.render()
    finally:
        world.close()
    t1 = samples[-1].stamp_ns if samples else t0
    return (Frame(rgb0, k, depth0, stamp_ns=t0), Frame(rgb1, k, depth1, stamp_ns=t1 + 1),
            samples)


def measure(seed: int = 3) -> Dict[str, float]:
    """Write the demo episode's bag compressed and raw; return their sizes (MB) and more."""
    from deft_replay.bag_reader import read_episode_bag
    from deft_replay.bag_writer import EpisodeBagWriter

    initial, final, joints = demo_episode(seed)
    record = {'run_id': 'bench', 'episode': 0, 'task': 'pick up the cup', 'reward': 1.0,
              'reward_source': 'sim'}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, compress in (('zstd', True), ('none', False)):
            path = EpisodeBagWriter(compress=compress).write(
                Path(tmp) / name, initial=initial, final=final, joint_states=joints,
                record=record)
            sizes[name] = sum(f.stat().st_size for f in path.iterdir()) / 1e6
            if len(read_episode_bag(path).joint_states) != len(joints):
                raise RuntimeError(f'the {name} bag does not read back')
    return {'zstd_mb': sizes['zstd'], 'raw_mb': sizes['none'], 'joint_samples': len(joints)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print, and merge `episode_bag_mb` into the bench JSON."""
    parser = argparse.ArgumentParser(prog='python -m deft_eval.bench_bag',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    m = measure()
    print(f"episode bag: {m['zstd_mb']:.3f} MB with zstd chunks, {m['raw_mb']:.2f} MB raw "
          f"({m['raw_mb'] / m['zstd_mb']:.0f}x), {m['joint_samples']} joint samples", flush=True)
    if opts.out is not None:
        from deft_eval.bench_table1 import merge_results
        merge_results(opts.out, {'episode_bag_mb': {
            'value': round(m['zstd_mb'], 3), 'unit': 'MB', 'goal': f'<= {GOAL_MB}',
            'detail': (f"one twin demo episode ({TASK}: 2 RGB-D frames 640x480, "
                       f"{m['joint_samples']} joint states, the record) with the episode "
                       f"node's bag_compression zstd; raw (none) {m['raw_mb']:.2f} MB")}})
    return 0


if __name__ == '__main__':
    sys.exit(main())
