"""
Human-hand helpers the twin's tools share: named MANO poses, crops of rendered images, the hand.

- MANO_ANATOMICAL / mano_pose(name): nominal 45-value MANO poses of the named hand poses
  (open, closed, half, pinch, hook), as anatomical angles per MANO joint;
- crop_box / cut / to_crop: a square crop around pixel points, cut from an image and resized,
  and image pixels mapped into it (deft_sim.human_demos cuts its labelled crops with them);
- WRIST_TO_MANO: the MANO wrist frame in the robot wrist frame (deft_arm): they share +x (along
  the fingers) and +z (out of the palm, towards the object), so it is the identity;
- AWAY: a robot hand home pose outside the robot camera's view; load_hand(path): the hand config.

The affordance training set itself comes from simulated human demonstrations
(deft_sim.human_demos, `deft_sim_labels`); the earlier generator here, which wrote each task's
nominal robot grasp plus noise as the "human" label, is gone.
"""

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

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
