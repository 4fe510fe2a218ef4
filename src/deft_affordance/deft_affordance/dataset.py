"""
Training data of the affordance model: a manifest of object crops with their grasp labels.

Format
------
A dataset is a directory holding `manifest.jsonl` and the crop images it names::

    DATA_DIR/
        manifest.jsonl
        crops/000000.png ...

`manifest.jsonl` has one JSON object per line (blank lines are skipped; unknown keys are
ignored, so converters may keep provenance such as "video" or "frame")::

    {"crop": "crops/000000.png", "task": "pick up the cup",
     "contact_points": [[31.0, 40.5], [35.0, 42.0]],
     "wrist_rotation": [0.0, 0.0, 0.0, 1.0],
     "hand_pose": [45 floats],
     "split": "train"}

- `crop`: path of an RGB PNG (or JPEG), relative to DATA_DIR and inside it; square in practice
  (a crop that is not square is resized to a square: the labels follow per axis).
- `task`: non-empty text, encoded by the CLIP text tower.
- `contact_points`: 1 or more [u, v] in pixels of the crop: u the column, v the row, pixel
  centres at integers, each inside [-0.5, width - 0.5] x [-0.5, height - 0.5]. The number of
  points may vary per sample; the model predicts a fixed K (`--num-contacts`). The loss matches
  the two sets (`deft_affordance.training.contact_loss`): with exactly K labelled points, by the
  Hungarian minimum-cost assignment; otherwise by the symmetric Chamfer distance (each predicted
  point to its nearest label and each label to its nearest prediction, averaged). The robot uses
  the mean of the K points.
- `wrist_rotation`: [qx, qy, qz, qw], the orientation of the MANO wrist frame (MANO's
  `global_orient`) in the optical frame of the camera that saw the crop (REP 103: x right,
  y down, z forward). Normalised on reading; (0, 0, 0, 0) is refused. The affordance node turns it
  into base_link with the camera pose.
- `hand_pose`: 45 finite floats, MANO's 15 finger joints x axis-angle (radians, relative to the
  parent joint, MANO joint order, right hand, `flat_hand_mean=True`: all zeros is the flat hand).
- `split`: optional, "train" | "val" | "test"; missing means "train".

Every line is checked on reading; the first bad one raises `ManifestError` (a ValueError) naming
the manifest, the line number and the field.

Converting human-video annotations (100DOH / EPIC-style)
-------------------------------------------------------
The paper's model is trained on human videos. A converter writes one manifest line per
hand-object interaction:

1. Contact frame: take the frame where the hand-object detector (100DOH, Shan et al. 2020) first
   reports the hand in "portable object contact" with the object; the task text comes from the
   clip's narration or verb-noun label ("pick up the cup", "open the drawer").
2. Crop: take the object box of that frame, or better the same box in an earlier frame before the
   hand occludes the object (track the box back), enlarge it by ~10 % and make it square, clamp
   to the image, cut it out and save it as the PNG. Keep the crop box (x0, y0, side) for step 4.
3. MANO fit: run a hand mesh fitter (FrankMocap, HaMeR or similar) on the hand box of the contact
   frame. `hand_pose` = its 45 finger values in the full (not PCA) axis-angle form; if the fitter
   gives poses relative to MANO's mean hand, add `hands_mean` to get the flat-hand convention.
   `wrist_rotation` = its global orientation, expressed in the camera optical frame: a fitter
   whose camera has y up and z backward (OpenGL) needs R_optical = diag(1, -1, -1) @ R.
   Left hands: mirror the sample to a right hand (flip the crop left-right, u -> width - 1 - u,
   hand pose axis-angle (x, y, z) -> (x, -y, -z) per joint, wrist R -> M R M, M = diag(-1, 1, 1)).
4. Contacts: project the fitted hand's contact vertices (fingertips of the fingers touching the
   object and the palm centre, or vertices within ~1 cm of the object mask) into the contact
   frame with the fitter's camera, subtract the crop origin and scale by the crop's resize, so
   they are pixels of the saved crop. Drop points that land outside the crop; drop the sample if
   none remain.
5. `split`: split by video (never by frame), so val/test objects and scenes are unseen.
"""

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from deft_affordance.network import HAND_POSE_DIM, crop_to_tensor
from deft_common import rotations

MANIFEST = 'manifest.jsonl'
SPLITS = ('train', 'val', 'test')
REQUIRED = ('crop', 'task', 'contact_points', 'wrist_rotation', 'hand_pose')


class ManifestError(ValueError):
    """A manifest line that does not follow the format; the message names the line."""


@dataclass
class Sample:
    """One labelled crop of the manifest."""

    line: int
    crop: Path                    # absolute path of the image
    task: str
    contact_points: np.ndarray    # (Ki, 2) float64 pixels (u, v)
    wrist_rotation: np.ndarray    # (4,) unit quaternion x y z w
    hand_pose: np.ndarray         # (45,) float64
    split: str
    size: tuple                   # (width, height) of the crop


def _numbers(value, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must hold numbers') from None
    if isinstance(value, (str, bytes)) or any(isinstance(v, bool) for v in np.ravel(
            np.asarray(value, dtype=object))):
        raise ValueError(f'{what} must hold numbers')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{what} must be finite')
    return arr


def _image_size(path: Path) -> tuple:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ('RGB', 'RGBA', 'L', 'P', 'LA'):
                raise ValueError(f'image mode {img.mode} is not RGB')
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f'crop {str(path)!r} is not a readable image ({exc})') from exc


def parse_line(data_dir: Path, text: str) -> Sample:
    """Parse one manifest line (without its number); ValueError saying which field is wrong."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f'not JSON ({exc})') from exc
    if not isinstance(obj, dict):
        raise ValueError(f'expected a JSON object, got {type(obj).__name__}')
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise ValueError(f'missing {", ".join(missing)}')
    crop = obj['crop']
    if not isinstance(crop, str) or not crop:
        raise ValueError('"crop" must be a non-empty relative path')
    root = data_dir.resolve()
    path = (root / crop).resolve()
    if Path(crop).is_absolute() or root not in path.parents:
        raise ValueError(f'"crop" {crop!r} must be a relative path inside the data directory')
    if not path.is_file():
        raise ValueError(f'"crop" {crop!r} not found')
    size = _image_size(path)
    task = obj['task']
    if not isinstance(task, str) or not task.strip():
        raise ValueError('"task" must be a non-empty string')
    pts = _numbers(obj['contact_points'], '"contact_points"')
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
        raise ValueError('"contact_points" must be a non-empty list of [u, v] pairs')
    w, h = size
    if np.any(pts < -0.5) or np.any(pts[:, 0] > w - 0.5) or np.any(pts[:, 1] > h - 0.5):
        raise ValueError(f'"contact_points" {pts.tolist()} fall outside the {w} x {h} crop')
    q = _numbers(obj['wrist_rotation'], '"wrist_rotation"')
    if q.shape != (4,):
        raise ValueError('"wrist_rotation" must be 4 numbers [qx, qy, qz, qw]')
    n = float(np.linalg.norm(q))
    if n < 1e-6:
        raise ValueError('"wrist_rotation" is the zero quaternion')
    q = rotations.normalize(q)  # unit, w >= 0
    pose = _numbers(obj['hand_pose'], '"hand_pose"')
    if pose.shape != (HAND_POSE_DIM,):
        raise ValueError(f'"hand_pose" must be {HAND_POSE_DIM} numbers (MANO axis-angle), got '
                         f'shape {list(pose.shape)}')
    split = obj.get('split', 'train')
    if split not in SPLITS:
        raise ValueError(f'"split" {split!r} is not one of {", ".join(SPLITS)}')
    return Sample(0, path, task.strip(), pts, q, pose, split, size)


def read_manifest(data_dir) -> List[Sample]:
    """Read and check DATA_DIR/manifest.jsonl; ManifestError naming the first bad line."""
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST
    if not data_dir.is_dir():
        raise ManifestError(f'data directory {str(data_dir)!r} not found')
    if not manifest.is_file():
        raise ManifestError(f'{str(manifest)!r} not found: a dataset is a directory with '
                            f'{MANIFEST} (see deft_affordance.dataset)')
    samples = []
    with open(manifest, encoding='utf-8') as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                sample = parse_line(data_dir, text)
            except ValueError as exc:
                raise ManifestError(f'{manifest}: line {number}: {exc}') from None
            sample.line = number
            samples.append(sample)
    if not samples:
        raise ManifestError(f'{manifest} holds no samples')
    return samples


def select_split(samples: Sequence[Sample], split: str) -> List[Sample]:
    """Return the samples of one split ('all' for every sample)."""
    if split == 'all':
        return list(samples)
    if split not in SPLITS:
        raise ValueError(f'split {split!r} is not one of all, {", ".join(SPLITS)}')
    return [s for s in samples if s.split == split]


def load_crop(path: Path) -> np.ndarray:
    """Read an image as an H x W x 3 uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert('RGB'), dtype=np.uint8).copy()


class AffordanceDataset(torch.utils.data.Dataset):
    """Samples as tensors; images are decoded once and kept (datasets here are small)."""

    def __init__(self, samples: Sequence[Sample], image_size: int, augment: bool = False,
                 seed: int = 0, cache: bool = True):
        """Wrap `samples` for a model of input side `image_size`."""
        self.samples = list(samples)
        self.image_size = image_size
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.cache = cache
        self._images: Dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, i: int) -> torch.Tensor:
        """Return the normalised (3, S, S) tensor of sample i."""
        if i not in self._images:
            x = crop_to_tensor(load_crop(self.samples[i].crop), self.image_size)
            if not self.cache:
                return x
            self._images[i] = x
        return self._images[i]

    def __getitem__(self, i: int) -> Dict:
        s = self.samples[i]
        x = self.image(i)
        if self.augment:  # photometric only: geometry would have to move the labels too
            gain = float(self.rng.uniform(0.8, 1.2))
            bias = float(self.rng.uniform(-0.2, 0.2))
            x = x * gain + bias
        w, h = s.size
        contacts = (s.contact_points + 0.5) / np.array([w, h], dtype=np.float64)
        return {'image': x,
                'contacts': torch.as_tensor(contacts, dtype=torch.float32),
                'rotation': torch.as_tensor(rotations.to_matrix(s.wrist_rotation),
                                            dtype=torch.float32),
                'hand_pose': torch.as_tensor(s.hand_pose, dtype=torch.float32),
                'task': s.task,
                'size': torch.tensor([w, h], dtype=torch.float32),
                'index': i}


def collate(items: Sequence[Dict]) -> Dict:
    """Batch dataset items; contacts stay a list (their count varies per sample)."""
    return {'image': torch.stack([it['image'] for it in items]),
            'contacts': [it['contacts'] for it in items],
            'rotation': torch.stack([it['rotation'] for it in items]),
            'hand_pose': torch.stack([it['hand_pose'] for it in items]),
            'task': [it['task'] for it in items],
            'size': torch.stack([it['size'] for it in items]),
            'index': [it['index'] for it in items]}

