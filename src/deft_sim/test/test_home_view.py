"""The hand at home leaves the objects whole in the camera's image (the initial image I0)."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from deft_common.rotations import Transform  # noqa: E402
from deft_hand_driver.hand_config import load_hand_config  # noqa: E402
from deft_sim.kinematic_world import PinholeCamera  # noqa: E402
from deft_sim.mujoco_world import TASKS, MujocoSettings, MujocoWorld  # noqa: E402

SRC = Path(__file__).resolve().parents[2]
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
CAMERA = PinholeCamera(160, 120, 138.575, 138.575, 79.5, 59.5)
AWAY = (0.1, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0)  # far out of view
PLACEMENTS = [(seed, split) for split in ('train', 'test') for seed in range(4)]


def test_the_twin_and_the_arm_share_the_home_pose():
    arm = yaml.safe_load((SRC / 'deft_bringup' / 'config' / 'arm.yaml').read_text())
    assert tuple(arm['/**/arm']['ros__parameters']['home_pose']) == MujocoSettings().home_pose


@pytest.mark.parametrize('task', TASKS)
def test_the_hand_at_home_hides_no_object_pixel(task):
    # the scene rendered with the hand at home and with the hand far away: every pixel above
    # the table (object, bowl, dish, pot, grapes) has the same depth in both
    hand = load_hand_config(str(SRC / 'deft_hand_driver' / 'config' / 'leap_16dof.yaml'))
    home = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task=task))
    away = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task=task, home_pose=AWAY))
    try:
        for seed, split in PLACEMENTS:
            home.reset(seed, split)
            away.reset(seed, split)
            _, seen = home.render()
            _, whole = away.render()
            scene = np.isfinite(whole) & (whole < 0.9 - 0.005)  # above the table (0.9 m away)
            assert scene.sum() > 50, (seed, split)
            hidden = scene & ~(np.abs(seen - whole) <= 0.005)
            assert hidden.sum() == 0, f'{hidden.sum()} of {scene.sum()} px hidden: {seed} {split}'
    finally:
        home.close()
        away.close()
