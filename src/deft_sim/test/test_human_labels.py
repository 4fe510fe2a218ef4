"""Tests of the simulated human labels: manifest format, crops, contact colours, noise, splits."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import pytest  # noqa: E402

from deft_common import rotations  # noqa: E402
from deft_common.rotations import Transform  # noqa: E402
from deft_sim.human_labels import (  # noqa: E402
    MANO_ANATOMICAL,
    LabelGenerator,
    LabelSettings,
    load_hand,
    main,
    mano_pose,
)
from deft_sim.mujoco_world import camera_from_fovy  # noqa: E402
from deft_sim.tasks import TASK_SPECS  # noqa: E402

CAMERA = camera_from_fovy(160, 120, 46.8)
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
NOISE = LabelSettings(noise_px=3.0, noise_rad=0.2, noise_pose=0.1, size=64)
CLEAN = LabelSettings(noise_px=0.0, noise_rad=0.0, noise_pose=0.0, size=64)


@pytest.fixture(scope='module')
def hand():
    return load_hand()


def generator(task, hand, settings):
    return LabelGenerator(task, CAMERA, CAMERA_TO_BASE, hand, settings)


@pytest.mark.parametrize('task', ['pick_cup', 'pick_spoon', 'open_drawer', 'scoop_grape',
                                  'stir_spoon'])
def test_the_noise_free_contact_lands_on_the_object_in_the_crop(hand, task):
    gen = generator(task, hand, CLEAN)
    try:
        for i, split in enumerate(['train', 'test', 'train']):
            smp = gen.sample(i, 5, split)
            colours = gen.world.object_colors()  # the sample's object instance
            crop = smp['crop']
            assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
            np.testing.assert_array_equal(smp['noisy_contacts'], smp['contacts'])
            for u, v in np.round(smp['contacts']).astype(int):
                assert 0 <= u < 64 and 0 <= v < 64
                rgb = crop[v, u].astype(float) + 1.0
                cos = colours @ rgb / np.linalg.norm(colours, axis=1) / np.linalg.norm(rgb)
                assert cos.max() > 0.98, (task, i, crop[v, u], colours)
            # the check tells the object from its surroundings: the crop's corner fails it
            rgb = crop[0, 0].astype(float) + 1.0
            cos = colours @ rgb / np.linalg.norm(colours, axis=1) / np.linalg.norm(rgb)
            assert cos.max() < 0.98, (task, i, crop[0, 0])
    finally:
        gen.close()


def test_the_manifest_is_valid_and_the_noise_has_the_set_std(hand, tmp_path):
    n, seed = 40, 3
    gen = generator('pick_cup', hand, NOISE)
    clean = generator('pick_cup', hand, CLEAN)
    try:
        root = gen.write(str(tmp_path / 'labels'), n, seed)
        lines = [json.loads(x) for x in (root / 'manifest.jsonl').read_text().splitlines()]
        assert len(lines) == n
        d_uv, d_rot, d_pose = [], [], []
        for i, line in enumerate(lines):
            assert set(line) >= {'crop', 'task', 'contact_points', 'wrist_rotation',
                                 'hand_pose', 'split'}
            assert line['task'] == TASK_SPECS['pick_cup'].text
            assert line['split'] in ('train', 'test')
            with Image.open(root / line['crop']) as im:
                assert im.size == (64, 64) and im.mode == 'RGB'
            uv = np.asarray(line['contact_points'])
            assert uv.shape[1] == 2 and np.all((uv >= -0.5) & (uv <= 63.5))
            assert len(line['hand_pose']) == 45
            assert np.linalg.norm(line['wrist_rotation']) == pytest.approx(1.0, abs=1e-5)
            ref = clean.sample(i, seed, line['split'])
            d_uv.append(uv - ref['contacts'])
            rel = rotations.multiply(rotations.conjugate(ref['wrist']), line['wrist_rotation'])
            d_rot.append(rotations.to_rotvec(rel))
            d_pose.append(np.asarray(line['hand_pose']) - mano_pose('closed'))
        assert np.std(np.concatenate(d_uv)) == pytest.approx(NOISE.noise_px, rel=0.2)
        assert np.std(d_rot) == pytest.approx(NOISE.noise_rad, rel=0.2)
        assert np.std(d_pose) == pytest.approx(NOISE.noise_pose, rel=0.2)
        assert abs(np.mean(d_rot)) < 0.1 and abs(np.mean(np.concatenate(d_uv))) < 1.5
    finally:
        gen.close()
        clean.close()


def test_the_cup_label_wrist_is_palm_away_from_the_camera(hand):
    # the camera looks straight down and the human grasp is palm down, fingers along base +x:
    # in the optical frame (x right = base +x, z forward = down) that is the identity
    gen = generator('pick_cup', hand, CLEAN)
    try:
        wrist = gen.sample(0, 0, 'train')['wrist']
        assert rotations.angle_between(wrist, [0.0, 0.0, 0.0, 1.0]) < 1e-6
    finally:
        gen.close()


def test_splits_are_seeded_and_hold_the_test_fraction(hand):
    gen = generator('pick_cup', hand, NOISE)
    try:
        a, b, c = gen.splits(500, 0), gen.splits(500, 0), gen.splits(500, 1)
        assert a == b and a != c
        assert a.count('test') / 500 == pytest.approx(NOISE.test_fraction, abs=0.05)
        # the same (seed, index) gives the same sample, placement and noise
        s1, s2 = gen.sample(4, 0, 'test'), gen.sample(4, 0, 'test')
        np.testing.assert_array_equal(s1['crop'], s2['crop'])
        np.testing.assert_array_equal(s1['noisy_contacts'], s2['noisy_contacts'])
        assert not np.array_equal(gen.sample(5, 0, 'test')['noisy_contacts'],
                                  s1['noisy_contacts'])
    finally:
        gen.close()


def test_mano_poses_are_45_values_and_closed_is_flexed():
    for name in MANO_ANATOMICAL:
        assert mano_pose(name).shape == (45,)
    assert not np.any(mano_pose('open'))
    assert np.abs(mano_pose('closed')).sum() > np.abs(mano_pose('half')).sum() > 0
    with pytest.raises(ValueError, match='unknown hand pose'):
        mano_pose('fist bump')
    with pytest.raises(ValueError):
        LabelSettings(noise_px=-1.0)


def test_the_cli_writes_a_dataset_and_reports_progress(tmp_path, capsys):
    out = tmp_path / 'cli'
    assert main(['--task', 'open_drawer', '--n', '3', '--out', str(out), '--size', '48',
                 '--width', '160', '--height', '120', '--seed', '1']) == 0
    printed = capsys.readouterr().out
    assert '3/3' in printed and 'manifest.jsonl' in printed
    lines = (out / 'manifest.jsonl').read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])['task'] == 'open the drawer'
    assert len(list(Path(out, 'crops').glob('*.png'))) == 3
