"""
Simulated human grasp labels: an affordance training set rendered from the MuJoCo world.

DEFT trains its affordance model on people grasping objects in videos. Here the people are
simulated: for N seeded placements of a task the scene is rendered (the hand out of view), the
object is cropped and the task's nominal human grasp (tasks.TaskSpec) is written as a noisy
label, in the affordance dataset format (deft_affordance.dataset)::

    OUT/manifest.jsonl   one JSON object per line:
        {"crop": "crops/000000.png", "task": "pick up the cup",
         "contact_points": [[u, v], ...], "wrist_rotation": [qx, qy, qz, qw],
         "hand_pose": [45 floats], "split": "train" | "test",
         "seed": placement seed, "sim_task": world task id}
    OUT/crops/000000.png ...

- Crop: the object's bounding box (the corners of its geoms' boxes, projected with the camera
  model), grown by `margin` on every side, made square about its centre, cut from the image
  (edge pixels repeat where it leaves the image) and resized to `size` x `size`.
- contact_points: the spec's contact points on the object projected into the crop's pixels,
  each plus isotropic Gaussian noise of std `noise_px` (crop pixels) per axis, clipped to the
  crop.
- wrist_rotation: the nominal wrist orientation in the camera optical frame, turned by a random
  rotation exp(w), w ~ N(0, noise_rad^2 I3) (radians, in the wrist frame). The MANO wrist frame
  and the robot wrist frame (deft_arm) share +x (along the fingers) and +z (out of the palm,
  towards the object), so WRIST_TO_MANO is the identity and the label is the robot wrist's.
- hand_pose: the MANO pose of the spec's named hand pose (MANO_ANATOMICAL) plus Gaussian noise
  of std `noise_pose` (rad) on each of the 45 values.
- split: the placement's distribution: a seeded fraction `test_fraction` of the samples place
  the object from the held-out test distribution (kinematic_world.SPLITS), the rest from train.

Sample i is fully determined by (seed, i): its split, placement and noise.

    python -m deft_sim.human_labels --task pick_cup --n 200 --out DIR --noise-px 4
        --noise-rad 0.15 --seed 0 --size 128    (one command line)
"""

import argparse
from dataclasses import dataclass
import json
import os
from pathlib import Path
import sys
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform

WRIST_TO_MANO = (0.0, 0.0, 0.0, 1.0)  # MANO wrist frame in the robot wrist frame (identity)
AWAY = (0.1, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0)  # a hand home pose outside the camera's view

# Nominal MANO poses per hand-pose name, as anatomical angles (flex, abd, twist) in radians per
# MANO joint (deft_hand_driver.mano: flex > 0 bends towards the palm); joints not named are 0.
_FINGERS4 = ('index', 'middle', 'ring', 'pinky')
MANO_ANATOMICAL: Dict[str, Dict[str, Tuple[float, float, float]]] = {
    'open': {},
    # power grasp: all fingers wrapped, the thumb opposed across them
    'closed': {**{f'{f}{k}': (a, 0.0, 0.0) for f in _FINGERS4
                  for k, a in zip((1, 2, 3), (1.1, 1.3, 0.8))},
               'thumb1': (0.5, -0.6, 0.0), 'thumb2': (0.5, 0.0, 0.0), 'thumb3': (0.7, 0.0, 0.0)},
    'half': {**{f'{f}{k}': (a, 0.0, 0.0) for f in _FINGERS4
                for k, a in zip((1, 2, 3), (0.55, 0.65, 0.4))},
             'thumb1': (0.25, -0.3, 0.0), 'thumb2': (0.25, 0.0, 0.0), 'thumb3': (0.35, 0.0, 0.0)},
    # precision pinch: index and thumb tips meet, the other fingers loosely curled
    'pinch': {'index1': (0.8, 0.0, 0.0), 'index2': (0.9, 0.0, 0.0), 'index3': (0.4, 0.0, 0.0),
              **{f'{f}{k}': (a, 0.0, 0.0) for f in ('middle', 'ring', 'pinky')
                 for k, a in zip((1, 2, 3), (0.5, 0.6, 0.3))},
              'thumb1': (0.6, -0.5, 0.0), 'thumb2': (0.4, 0.0, 0.0), 'thumb3': (0.5, 0.0, 0.0)},
    # hook: fingers bent at PIP and DIP around a bar, the thumb alongside
    'hook': {**{f'{f}{k}': (a, 0.0, 0.0) for f in _FINGERS4
                for k, a in zip((1, 2, 3), (0.3, 1.4, 1.0))},
             'thumb1': (0.2, -0.2, 0.0)},
}


def mano_pose(name: str) -> np.ndarray:
    """Return the nominal 45-value MANO pose (right hand, flat mean) of a hand-pose name."""
    from deft_hand_driver.mano import ManoModel
    if name not in MANO_ANATOMICAL:
        raise ValueError(f'unknown hand pose {name!r}; known: {", ".join(MANO_ANATOMICAL)}')
    return ManoModel().pose_from_anatomical(MANO_ANATOMICAL[name])


@dataclass(frozen=True)
class LabelSettings:
    """Noise, crop and split settings of the label generator."""

    noise_px: float = 4.0  # std of each contact point coordinate, crop pixels
    noise_rad: float = 0.15  # std of each wrist rotation-vector component, rad
    noise_pose: float = 0.1  # std of each MANO pose value, rad
    size: int = 128  # crop side after resizing, px
    margin: float = 0.15  # crop growth on every side, fraction of the box's longer side
    test_fraction: float = 0.2  # fraction of samples placed from the test distribution

    def __post_init__(self):
        if min(self.noise_px, self.noise_rad, self.noise_pose, self.margin) < 0:
            raise ValueError('noise and margin values must be >= 0')
        if self.size < 8:
            raise ValueError('size must be >= 8 px')
        if not 0 <= self.test_fraction <= 1:
            raise ValueError('test_fraction must be in [0, 1]')


def crop_box(pixels: np.ndarray, margin: float) -> Tuple[float, float, float]:
    """Return the square crop (u0, v0, side) around pixel points (N, 2), grown by margin."""
    lo, hi = pixels.min(axis=0), pixels.max(axis=0)
    side = float(np.max(hi - lo)) * (1.0 + 2.0 * margin) + 1.0
    centre = (lo + hi) / 2.0
    return float(centre[0] - side / 2.0), float(centre[1] - side / 2.0), side


def cut(image: np.ndarray, box: Tuple[float, float, float], size: int) -> np.ndarray:
    """Cut a square box out of an image (edge pixels repeat outside) resized to size x size."""
    u0, v0, side = box
    centres = (np.arange(size) + 0.5) * side / size - 0.5  # crop pixel centres, image coords
    cols = np.clip(np.round(u0 + 0.5 + centres).astype(int), 0, image.shape[1] - 1)
    rows = np.clip(np.round(v0 + 0.5 + centres).astype(int), 0, image.shape[0] - 1)
    return image[rows][:, cols]


def to_crop(pixels: np.ndarray, box: Tuple[float, float, float], size: int) -> np.ndarray:
    """Map image pixels (N, 2) into the pixels of the resized crop (pixel centres at integers)."""
    u0, v0, side = box
    return (np.asarray(pixels, dtype=float) + 0.5 - [u0, v0]) * size / side - 0.5


class LabelGenerator:
    """Renders a task's scenes and writes noisy human grasp labels (see the module docstring)."""

    def __init__(self, task: str, camera, camera_to_base: Transform, hand,
                 settings: Optional[LabelSettings] = None):
        from deft_sim.mujoco_world import MujocoSettings, MujocoWorld
        from deft_sim.tasks import task_spec
        self.spec = task_spec(task)
        self.s = settings or LabelSettings()
        self.camera, self.camera_to_base = camera, camera_to_base
        self.world = MujocoWorld(camera, camera_to_base, hand,
                                 MujocoSettings(task=task, home_pose=AWAY))
        self.hand_pose = mano_pose(self.spec.hand_pose)

    def close(self) -> None:
        """Free the renderer."""
        self.world.close()

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project base-frame points (N, 3) to image pixels (N, 2)."""
        return self.camera.project(self.camera_to_base.inverse().apply(points))

    def splits(self, n: int, seed: int) -> list:
        """Return the split of each of n samples (seeded)."""
        draws = np.random.default_rng([seed, 7]).random(n)
        return ['test' if d < self.s.test_fraction else 'train' for d in draws]

    def sample(self, index: int, seed: int, split: str) -> dict:
        """Render sample `index` and return its crop, box and nominal and noisy labels."""
        w, s = self.world, self.s
        placement = seed * 1_000_003 + index
        w.reset(placement, split)
        rgb, _ = w.render()
        box = crop_box(self.project(w.object_points()), s.margin)
        crop = cut(rgb, box, s.size)
        contacts = to_crop(self.project(self.spec.contacts_in(w)), box, s.size)
        _, wrist = self.spec.grasp_in(w)
        optical = rotations.multiply(rotations.multiply(
            rotations.conjugate(self.camera_to_base.rotation), wrist), WRIST_TO_MANO)
        rng = np.random.default_rng([seed, index])
        noisy = contacts + rng.normal(0.0, s.noise_px, contacts.shape)
        noisy = np.clip(noisy, -0.5, s.size - 0.5)
        turn = rng.normal(0.0, s.noise_rad, 3)
        noisy_wrist = rotations.normalize(rotations.multiply(optical, rotations.from_rotvec(turn)))
        hand = self.hand_pose + rng.normal(0.0, s.noise_pose, 45)
        return dict(crop=crop, box=box, placement=placement, contacts=contacts,
                    wrist=rotations.normalize(optical), noisy_contacts=noisy,
                    noisy_wrist=noisy_wrist, hand_pose=hand)

    def write(self, out: str, n: int, seed: int = 0, progress=None) -> Path:
        """Write n samples to the directory `out` (manifest.jsonl + crops/); return its path."""
        from PIL import Image
        root = Path(out)
        (root / 'crops').mkdir(parents=True, exist_ok=True)
        lines = []
        for i, split in enumerate(self.splits(n, seed)):
            smp = self.sample(i, seed, split)
            name = f'crops/{i:06d}.png'
            Image.fromarray(smp['crop']).save(root / name)
            lines.append(json.dumps({
                'crop': name, 'task': self.spec.text,
                'contact_points': np.round(smp['noisy_contacts'], 3).tolist(),
                'wrist_rotation': [round(float(v), 6) for v in smp['noisy_wrist']],
                'hand_pose': [round(float(v), 5) for v in smp['hand_pose']],
                'split': split, 'seed': smp['placement'], 'sim_task': self.spec.name}))
            if progress is not None:
                progress(i + 1, n)
        tmp = root / 'manifest.jsonl.tmp'
        tmp.write_text('\n'.join(lines) + '\n')
        os.replace(tmp, root / 'manifest.jsonl')
        return root


def load_hand(path: str = ''):
    """Load the hand config: `path`, or the installed default, or the source tree's default."""
    from deft_hand_driver import hand_config
    if path:
        return hand_config.load_hand_config(path)
    try:
        return hand_config.load_hand_config('')
    except (OSError, LookupError):  # not installed: run from the source tree
        source = Path(hand_config.__file__).resolve().parents[1] / 'config'
        return hand_config.load_hand_config(str(source / hand_config.DEFAULT_CONFIG))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line tool (see the module docstring); return the exit status."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from deft_sim.tasks import TASK_SPECS
    parser = argparse.ArgumentParser(
        prog='python -m deft_sim.human_labels',
        description='Write a simulated human-label affordance dataset of a task.')
    parser.add_argument('--task', required=True, choices=sorted(TASK_SPECS))
    parser.add_argument('--n', type=int, default=200, help='number of samples')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--noise-px', type=float, default=4.0, help='contact noise std, px')
    parser.add_argument('--noise-rad', type=float, default=0.15, help='wrist noise std, rad')
    parser.add_argument('--noise-pose', type=float, default=0.1, help='MANO noise std, rad')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=128, help='crop side, px')
    parser.add_argument('--test-fraction', type=float, default=0.2)
    parser.add_argument('--width', type=int, default=320, help='render width, px')
    parser.add_argument('--height', type=int, default=240, help='render height, px')
    parser.add_argument('--fovy', type=float, default=46.8, help='vertical field of view, deg')
    parser.add_argument('--camera-to-base', type=float, nargs=7,
                        default=[0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0],
                        metavar=('X', 'Y', 'Z', 'QX', 'QY', 'QZ', 'QW'))
    parser.add_argument('--hand-config', default='', help='hand YAML ("" = installed default)')
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error('--n must be >= 1')
    try:
        from deft_sim.mujoco_world import camera_from_fovy
        settings = LabelSettings(args.noise_px, args.noise_rad, args.noise_pose, args.size,
                                 test_fraction=args.test_fraction)
        camera = camera_from_fovy(args.width, args.height, args.fovy)
        gen = LabelGenerator(args.task, camera, Transform.from_list(args.camera_to_base),
                             load_hand(args.hand_config), settings)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(f'{args.task}: {done}/{total} samples', flush=True)
    try:
        root = gen.write(args.out, args.n, args.seed, progress)
    finally:
        gen.close()
    print(f'wrote {root / "manifest.jsonl"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
