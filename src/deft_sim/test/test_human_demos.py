"""Tests of the simulated human demonstrations: the human hand, contact frames, labels, files."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# torch before any OpenGL context: importing it after EGL contexts were made crashed (segfault)
from deft_affordance.dataset import read_manifest  # noqa: E402
from deft_sim.human_dataset import main, write_dataset  # noqa: E402
from deft_sim.human_demos import DemoGenerator  # noqa: E402
from deft_sim.human_hand import BONES  # noqa: E402
from deft_sim.human_scene import DemoSettings, gmm_centres  # noqa: E402
from deft_sim.mujoco_hand import HandGeometry  # noqa: E402

SMALL = DemoSettings(size=64, width=160, height=120)


@pytest.fixture(scope='module')
def cup():
    gen = DemoGenerator('pick_cup', SMALL)
    yield gen
    gen.close()


@pytest.fixture(scope='module')
def cup_clips(cup):
    clips = [cup.clip(i, 3) for i in range(8)]
    assert all(c is not None for c in clips)
    return clips


def on_object(crop, uv, colours) -> bool:
    u, v = np.clip(np.round(uv).astype(int), 0, crop.shape[0] - 1)
    rgb = crop[v, u].astype(float) + 1.0
    cos = colours @ rgb / np.linalg.norm(colours, axis=1) / np.linalg.norm(rgb)
    return bool(cos.max() > 0.98)


def test_the_hand_has_human_proportions_not_the_robot_hands(cup, cup_clips):
    hand = cup.hand
    assert len(BONES) == 15  # five fingers of three bones; the robot hand has four fingers
    hand.apply_scale(1.0)
    p = hand.proportions()
    # adult hands: index finger (knuckle to tip) 7-9 cm, palm width 7-9 cm, hand 16-20 cm
    assert 0.07 <= p['index_length'] <= 0.09
    assert 0.07 <= p['palm_width'] <= 0.09
    assert 0.16 <= p['hand_length'] <= 0.20
    robot = HandGeometry()
    assert sum(robot.links) > 0.1 and abs(sum(robot.links) - p['index_length']) > 0.02
    assert abs(2 * robot.palm_half[1] - p['palm_width']) > 0.01
    # persons differ in hand size, within 0.9-1.1 x
    scales = [c.person.scale for c in cup_clips]
    assert min(scales) >= 0.9 and max(scales) <= 1.1 and np.ptp(scales) > 0.05


def test_the_contact_frame_is_the_first_with_a_hand_object_contact(cup_clips):
    for clip in cup_clips:
        c = clip.contact_frame
        assert c > 0 and len(clip.contacts[c]) > 0
        assert len(clip.contacts[c - 1]) == 0
        assert all(len(x) == 0 for x in clip.contacts[:c])
        assert len(clip.wrists) > c + 5  # the motion follows the grasp


def test_the_cup_is_grasped_by_its_side_the_robot_on_top(cup, cup_clips):
    top = []
    for clip in cup_clips:
        rel = clip.contacts[clip.contact_frame] - clip.object_start
        half = clip.object_start[2]  # the cup stands on the table: its centre is half its height
        radial = np.hypot(rel[:, 0], rel[:, 1])
        radius = np.max(radial)
        assert np.all(radial > 0.8 * radius)  # on the wall, the mouth free
        top.append(half - rel[:, 2].mean())
        # the robot's nominal pick_cup contact is the middle of the cup's top
        robot = clip.robot_contact - clip.object_start
        assert robot[2] == pytest.approx(half, abs=1e-3) and np.hypot(*robot[:2]) < 1e-3
    assert np.median(top) > 0.015  # the mean contact is well below the rim


def test_labels_vary_between_persons(cup_clips):
    wrists = np.array([c.wrist_optical for c in cup_clips])
    poses = np.array([c.hand_pose for c in cup_clips])
    assert np.ptp(poses, axis=0).max() > 0.1
    assert len({tuple(np.round(w, 3)) for w in wrists}) == len(cup_clips)
    persons = {json.dumps(c.person.summary()) for c in cup_clips}
    assert len(persons) == len(cup_clips)


@pytest.mark.parametrize('task', ['pick_cup', 'pick_spoon', 'open_drawer', 'stir_spoon'])
def test_the_contact_labels_land_on_the_object_in_the_hand_free_crop(task):
    gen = DemoGenerator(task, SMALL)
    try:
        hits, total = 0, 0
        for i in range(4):
            clip = gen.clip(i, 5)
            assert clip is not None and clip.crop.shape == (64, 64, 3)
            colours = gen.world.object_colors()
            for uv in clip.contact_points:
                hits += on_object(clip.crop, uv, colours)
                total += 1
            if task == 'pick_cup':  # the check tells the object from the crop's corner
                assert not on_object(clip.crop, (0, 0), colours)
            # the crop shows no hand: no skin-coloured pixel of the person's tone
            skin = np.array(clip.person.skin) * 255.0
            assert np.min(np.abs(clip.crop.reshape(-1, 3) - skin).sum(axis=1)) > 10 or \
                task == 'open_drawer'
        assert hits >= 0.8 * total, (task, hits, total)
    finally:
        gen.close()


def test_gmm_centres_find_two_clusters():
    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal((10, 10), 1.0, (30, 2)), rng.normal((40, 20), 1.0, (10, 2))])
    c = gmm_centres(pts, 2)
    np.testing.assert_allclose(c[0], (10, 10), atol=1.0)  # the heavier first
    np.testing.assert_allclose(c[1], (40, 20), atol=1.5)
    assert gmm_centres(np.array([[3.0, 4.0], [3.0, 4.0]]), 3).shape == (1, 2)


def test_the_dataset_loads_holds_train_configurations_and_a_tau(tmp_path):
    root = write_dataset(str(tmp_path / 'demos'), ['pick_cup', 'open_drawer'], 5, seed=1,
                         settings=DemoSettings(size=48, width=160, height=120,
                                               val_fraction=0.4))
    samples = read_manifest(root)
    lines = [json.loads(x) for x in (root / 'manifest.jsonl').read_text().splitlines()]
    assert len(samples) == len(lines) == 10
    assert {x['split'] for x in lines} <= {'train', 'val'} and 'test' not in \
        {s.split for s in samples}
    assert {x['split'] for x in lines} == {'train', 'val'}
    for x in lines:
        assert '/train/' in x['instance']  # instances.ObjectInstance.name: task/split/index
        assert x['contact_frame'] > 0 and 'azimuth' in x['viewpoint']
        assert len(x['hand_pose']) == 45 and x['sim_task'] in ('pick_cup', 'open_drawer')
    taus = json.loads((root / 'taus.json').read_text())
    assert set(taus) == {'pick_cup', 'open_drawer'}
    for entry in taus.values():
        tau = np.reshape(entry['tau'], (-1, 3))
        assert np.allclose(tau[0], 0.0) and len(tau) >= 4
        assert len(entry['tau_rotations']) == len(entry['tau'])
    assert np.reshape(taus['pick_cup']['tau'], (-1, 3))[-1][2] > 0.08  # lifted
    drawer = np.reshape(taus['open_drawer']['tau'], (-1, 3))[-1]
    assert np.linalg.norm(drawer[:2]) > 0.1 and drawer[0] < 0  # pulled towards the robot


def test_the_cli_reports_progress_and_refuses_bad_arguments(tmp_path, capsys):
    out = tmp_path / 'cli'
    assert main(['--task', 'pick_spoon', '--n', '2', '--out', str(out), '--size', '32',
                 '--width', '128', '--height', '96', '--frames']) == 0
    printed = capsys.readouterr().out
    assert 'clip 2/2' in printed and 'taus.json' in printed
    assert len(list((out / 'clips').glob('*/frame_000.png'))) == 2
    for bad in (['--n', '0'], ['--size', '4'], ['--val-fraction', '2']):
        with pytest.raises(SystemExit) as exc:
            main(['--task', 'pick_cup', '--out', str(out)] + bad)
        assert exc.value.code == 2
