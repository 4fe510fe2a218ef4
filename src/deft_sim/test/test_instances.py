"""Object instances: disjoint train and test sets, reproducible configurations, built as drawn."""

import os

import numpy as np
import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')

from deft_common.rotations import Transform  # noqa: E402
from deft_hand_driver.hand_config import load_hand_config  # noqa: E402
from deft_sim.instances import (  # noqa: E402
    N_INSTANCES,
    configuration,
    instance,
    instances,
)
from deft_sim.kinematic_world import PinholeCamera, sample_placement  # noqa: E402
from deft_sim.mujoco_world import TASKS, MujocoSettings, MujocoWorld  # noqa: E402
from deft_sim.tasks import TASK_SPECS  # noqa: E402

CAMERA = PinholeCamera(80, 60, 69.3, 69.3, 39.5, 29.5)
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
HAND = os.path.join(os.path.dirname(__file__), '..', '..', 'deft_hand_driver', 'config',
                    'leap_16dof.yaml')


@pytest.mark.parametrize('task', TASKS)
def test_train_and_test_instances_share_nothing(task):
    train, test = instances(task, 'train'), instances(task, 'test')
    assert (len(train), len(test)) == (N_INSTANCES['train'], N_INSTANCES['test'])
    assert {i.split for i in train} == {'train'} and {i.split for i in test} == {'test'}
    assert not {i.index for i in train} & {i.index for i in test}
    assert not {i.rgb for i in train} & {i.rgb for i in test}  # not even a colour
    assert not {i.size for i in train} & {i.size for i in test}
    assert len({i.size for i in train + test}) == len(train + test)  # every one its own size
    assert instance(task, 3) == instance(task, 3)  # drawn from its index alone


def test_a_configuration_is_reproducible_and_stays_in_its_split():
    for split in ('train', 'test'):
        drawn = set()
        for seed in range(40):
            inst, (x, y, yaw, _) = configuration('pick_cup', seed, split)
            again, (x2, y2, yaw2, _) = configuration('pick_cup', seed, split)
            assert inst == again and (x, y, yaw) == (x2, y2, yaw2)
            assert inst.split == split
            assert (x, y, yaw) == sample_placement(seed, split)[:3]  # the placement as before
            drawn.add(inst.index)
        assert len(drawn) == N_INSTANCES[split]  # 40 seeds reach every instance of the split


def test_bad_task_index_or_split_is_refused():
    with pytest.raises(ValueError, match='unknown task'):
        instance('juggle', 0)
    with pytest.raises(ValueError, match='instance index'):
        instance('pick_cup', sum(N_INSTANCES.values()))
    with pytest.raises(ValueError, match='unknown split'):
        instances('pick_cup', 'val')


@pytest.fixture(scope='module')
def hand():
    return load_hand_config(HAND)


def test_the_world_builds_the_configuration_s_instance(hand):
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task='pick_cup'))
    nominal = MujocoSettings().cup
    try:
        for seed, split in [(0, 'train'), (1, 'test'), (2, 'train'), (0, 'train')]:
            w.reset(seed, split)
            inst = configuration('pick_cup', seed, split)[0]
            assert w.instance == inst
            cup = w.model.geom('cup')
            radius, half_height = w.model.geom_size[cup.id][:2]
            assert radius == pytest.approx(nominal.radius * inst.size[0])
            assert half_height == pytest.approx(nominal.height / 2 * inst.size[1])
            assert w.object_pose()[0][2] == pytest.approx(half_height, abs=2e-3)  # on the table
            assert np.allclose(w.object_colors()[0], inst.rgb)
            assert w.model.body('cup').mass[0] == pytest.approx(nominal.mass * inst.mass)
            assert w.object_scale() == inst.scale
            # the scripted grasp follows the instance: pick_cup's contact is the cup's top
            top = TASK_SPECS['pick_cup'].contacts_in(w)[0]
            assert top[2] == pytest.approx(2 * half_height, abs=2e-3)
            rgb, _ = w.render()  # the renderer follows the rebuilt model
            assert rgb.shape == (CAMERA.height, CAMERA.width, 3)
    finally:
        w.close()


def test_a_world_that_switches_instances_draws_each_as_a_fresh_world_does(hand):
    """One OpenGL context for the world's life: a new model needs only its own MjrContext."""
    first_seed = {}  # instance -> the first seed that places it
    for seed in range(40):
        first_seed.setdefault(configuration('pick_cup', seed, 'train')[0], seed)
    seeds = list(first_seed.values())[:3]  # three instances: each reset compiles a new model
    assert len(seeds) == 3
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task='pick_cup'))
    try:
        w.render()
        renderer = w._renderer
        for seed in seeds:
            w.reset(seed, 'train')
            rgb, depth = w.render()
            assert w._renderer is renderer and renderer.model is w.model
            fresh = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task='pick_cup'))
            try:
                fresh.reset(seed, 'train')
                rgb2, depth2 = fresh.render()
            finally:
                fresh.close()
            assert np.array_equal(rgb, rgb2)
            assert np.array_equal(np.isnan(depth), np.isnan(depth2))
            assert np.allclose(depth[~np.isnan(depth)], depth2[~np.isnan(depth2)], atol=1e-5)
    finally:
        w.close()


def test_without_instances_the_nominal_object_stays(hand):
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand,
                    MujocoSettings(task='pick_spoon', instances=False))
    try:
        for seed, split in [(0, 'train'), (5, 'test')]:
            w.reset(seed, split)
            assert w.instance is None and w.object_scale() == (1.0, 1.0, 1.0)
            assert w.spoon == MujocoSettings().spoon
    finally:
        w.close()
