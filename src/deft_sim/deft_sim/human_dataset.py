"""
The simulated human demonstrations as an affordance data set, and the `deft_sim_labels` command.

write_dataset renders n clips per task (deft_sim.human_demos.DemoGenerator) into the manifest
format deft_affordance.dataset reads (manifest.jsonl, crops/), plus taus.json (the human wrist
path after contact, per task) and settings.json. See docs/human_demos.md.
"""


import argparse
from dataclasses import asdict
import json
import os
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

import numpy as np

from deft_sim.human_demos import DemoGenerator
from deft_sim.human_scene import (
    HUMAN_GRASPS,
    Clip,
    DemoSettings,
)


def manifest_line(clip: Clip, name: str, clip_id: int, text: str) -> dict:
    """Return the manifest line of a clip (deft_affordance.dataset's format plus provenance)."""
    return {
        'crop': name, 'task': text,
        'contact_points': np.round(clip.contact_points, 3).tolist(),
        'wrist_rotation': [round(float(v), 6) for v in clip.wrist_optical],
        'hand_pose': [round(float(v), 5) for v in clip.hand_pose],
        'split': clip.split, 'clip': f'{clip_id:06d}', 'contact_frame': clip.contact_frame,
        'frames': len(clip.wrists), 'person': clip.person.summary(), 'instance': clip.instance,
        'seed': clip.seed, 'sim_task': clip.task, 'viewpoint': clip.viewpoint.summary(),
        'contact_base': np.round(clip.contact_base, 5).tolist(),
        'robot_contact_base': np.round(clip.robot_contact, 5).tolist()}


def tau_entry(clip: Clip, clip_id: int, spec) -> dict:
    """Return the taus.json entry of a task from its demonstration clip."""
    offsets, turns = clip.tau()
    steps = np.linalg.norm(np.diff(offsets, axis=0), axis=1)
    return {'tau': np.round(offsets, 5).ravel().tolist(),
            'tau_rotations': np.round(turns, 5).ravel().tolist(),
            'waypoints': len(offsets), 'path_length_m': round(float(steps.sum()), 4),
            'clip': f'{clip_id:06d}', 'seed': clip.seed, 'contact_frame': clip.contact_frame,
            'frame': 'MANO wrist offsets from the wrist at the contact frame (m, base_link '
                     'axes, x y z triples; the first is the contact); tau_rotations: rotation '
                     'vectors (rad, base axes), q = exp(r) q_contact',
            'robot_tau': list(spec.tau), 'robot_tau_rotations': list(spec.tau_rotations)}


def write_dataset(out: str, tasks: Sequence[str], n: int, seed: int = 0,
                  settings: Optional[DemoSettings] = None, save_frames: bool = False,
                  progress=None) -> Path:
    """
    Write n clips per task to `out`; return its path.

    manifest.jsonl, crops/, taus.json, settings.json and (save_frames) clips/<clip>/frames.
    Clips in which the hand never touches the object are skipped (reported to `progress`).
    """
    from PIL import Image

    from deft_sim.tasks import task_spec
    s = settings or DemoSettings()
    root = Path(out)
    (root / 'crops').mkdir(parents=True, exist_ok=True)
    lines, taus, clip_id = [], {}, 0
    for task in tasks:
        spec = task_spec(task)
        gen = DemoGenerator(task, s)
        try:
            for i in range(n):
                start = time.monotonic()
                clip = gen.clip(i, seed, render_frames=save_frames)
                if clip is None:
                    if progress is not None:
                        progress(task, i, n, None, time.monotonic() - start)
                    continue
                name = f'crops/{clip_id:06d}.png'
                Image.fromarray(clip.crop).save(root / name)
                if save_frames:
                    folder = root / 'clips' / f'{clip_id:06d}'
                    folder.mkdir(parents=True, exist_ok=True)
                    for k, frame in enumerate(clip.frames):
                        Image.fromarray(frame).save(folder / f'frame_{k:03d}.png')
                lines.append(json.dumps(manifest_line(clip, name, clip_id, spec.text)))
                if task not in taus:
                    taus[task] = tau_entry(clip, clip_id, spec)
                if progress is not None:
                    progress(task, i, n, clip, time.monotonic() - start)
                clip_id += 1
        finally:
            gen.close()
    _atomic(root / 'manifest.jsonl', '\n'.join(lines) + '\n')
    _atomic(root / 'taus.json', json.dumps(taus, indent=1) + '\n')
    (root / 'settings.json').write_text(json.dumps(
        {'seed': seed, 'n': n, 'tasks': list(tasks), **asdict(s)}, indent=1) + '\n')
    return root


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line tool (see the module docstring); return the exit status."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    parser = argparse.ArgumentParser(
        prog='deft_sim_labels',
        description="Generate simulated human demonstration clips of the twin's tasks and "
                    'label them as videos are labelled (affordance dataset format).')
    parser.add_argument('--task', required=True, choices=sorted(HUMAN_GRASPS) + ['all'])
    parser.add_argument('--n', type=int, default=20, help='clips per task')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=128, help='crop side, px')
    parser.add_argument('--width', type=int, default=224, help='frame width, px')
    parser.add_argument('--height', type=int, default=168, help='frame height, px')
    parser.add_argument('--val-fraction', type=float, default=0.15)
    parser.add_argument('--components', type=int, default=3,
                        help='at most this many contact points (mixture centres) per clip')
    parser.add_argument('--frames', action='store_true',
                        help='also save every frame as clips/<clip>/frame_<k>.png')
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error('--n must be >= 1')
    if args.seed < 0:
        parser.error('--seed must be >= 0')
    try:
        settings = DemoSettings(size=args.size, width=args.width, height=args.height,
                                val_fraction=args.val_fraction, components=args.components)
    except ValueError as exc:
        parser.error(str(exc))
    tasks = sorted(HUMAN_GRASPS) if args.task == 'all' else [args.task]

    def progress(task, i, n, clip, seconds):
        if clip is None:
            print(f'{task}: clip {i + 1}/{n}: the hand never touched the object; skipped',
                  flush=True)
        else:
            print(f'{task}: clip {i + 1}/{n} ({clip.split}, {clip.instance}): contact at frame '
                  f'{clip.contact_frame}/{len(clip.wrists)}, {seconds:.2f} s', flush=True)
    try:
        root = write_dataset(args.out, tasks, args.n, args.seed, settings, args.frames,
                             progress)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {root / "manifest.jsonl"} and {root / "taus.json"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
