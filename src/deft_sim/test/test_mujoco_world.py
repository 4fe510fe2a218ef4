"""Tests of the MuJoCo world: model, placement, camera, and grasps that hold or fail by physics."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

from pathlib import Path  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from deft_common import rotations  # noqa: E402
from deft_common.rotations import Transform  # noqa: E402
from deft_hand_driver.hand_config import HandConfig, load_hand_config  # noqa: E402
from deft_sim import mujoco_models as mm  # noqa: E402
from deft_sim.kinematic_world import SPLITS, PinholeCamera  # noqa: E402
from deft_sim.mujoco_world import (  # noqa: E402
    MujocoSettings,
    MujocoWorld,
    camera_from_fovy,
    fovy_of,
    material_slots,
)

HAND_YAML = Path(__file__).resolve().parents[2] / 'deft_hand_driver' / 'config' / 'leap_16dof.yaml'
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])  # 0.9 m above, down
CAMERA = PinholeCamera(160, 120, 138.575, 138.575, 79.5, 59.5)  # the node's 640x480, quartered
PALM_DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # wrist +z (approach) down, fingers along +x
AWAY = (0.1, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0)  # a home pose out of the camera's view
DT = 0.02  # the arm's 50 Hz control period


@pytest.fixture(scope='module')
def hand() -> HandConfig:
    return load_hand_config(str(HAND_YAML))


@pytest.fixture(scope='module')
def world(hand):
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand)
    yield w
    w.close()


def move(w, start, goal, q, hand, duration):
    """Drive the wrist along a straight line at the arm's control rate."""
    start, goal = np.asarray(start, float), np.asarray(goal, float)
    n = max(1, int(round(duration / DT)))
    for k in range(1, n + 1):
        w.update(start + (goal - start) * k / n, q, hand, dt=DT)


def pick(w, offset=(0.0, 0.0, 0.0), q=PALM_DOWN, closure=1.0, clearance=0.012, carry=0.15):
    """Approach from above the cup (+ offset), close, lift 15 cm, carry to -y, hold 1.1 s."""
    centre, _ = w.object_pose()
    grasp = centre + [0.0, 0.0, w.s.cup.height / 2 + clearance] + np.asarray(offset)
    above = grasp + [0.0, 0.0, 0.10]
    move(w, w.palm_pose()[0], above, q, 0.0, 0.6)
    move(w, above, grasp, q, 0.0, 0.6)
    for k in range(1, 21):  # close over 0.4 s
        w.update(grasp, q, closure * k / 20, dt=DT)
    move(w, grasp, grasp, q, closure, 0.3)
    lifted, carried = grasp + [0.0, 0.0, 0.15], grasp + [0.0, -carry, 0.15]
    move(w, grasp, lifted, q, closure, 1.0)
    move(w, lifted, carried, q, closure, 1.0)
    move(w, carried, carried, q, closure, 1.1)
    return w.task_reward()


# --- model ---------------------------------------------------------------------------------
def test_model_has_the_configs_16_servos_and_a_welded_wrist(world, hand):
    m = world.model
    assert m.nu == 16 and hand.size == 16
    for i, name in enumerate(hand.joint_names):
        act = m.actuator(name)
        joint = m.joint(name)
        assert act.id == world._actuators[i]
        assert m.actuator_trnid[act.id, 0] == joint.id
        np.testing.assert_allclose(joint.range, [hand.lower[i], hand.upper[i]], atol=1e-6)
        np.testing.assert_allclose(act.ctrlrange, [hand.lower[i], hand.upper[i]], atol=1e-6)
        assert act.forcelimited and act.forcerange[1] == pytest.approx(world.s.hand.servo_torque)
        assert act.gainprm[0] == pytest.approx(world.s.hand.kp)
    weld = m.eq('wrist')
    assert weld.type == mujoco.mjtEq.mjEQ_WELD
    bodies = {m.body(int(weld.obj1id[0])).name, m.body(int(weld.obj2id[0])).name}
    assert bodies == {'wrist_target', 'palm'}
    assert m.body('wrist_target').mocapid >= 0


def test_a_hand_without_the_16_joints_is_rejected(hand):
    data = {'name': 'three', 'joints': [{'name': n, 'id': i, 'lower': -1.0, 'upper': 1.0}
                                        for i, n in enumerate(hand.joint_names[:3])],
            'named_poses': {'open': {}, 'closed': {}}}
    with pytest.raises(ValueError, match='16-DOF'):
        MujocoWorld(CAMERA, CAMERA_TO_BASE, HandConfig.from_dict(data))


def test_intrinsics_mujoco_cannot_render_are_rejected():
    with pytest.raises(ValueError, match='square'):
        fovy_of(PinholeCamera(160, 120, 140.0, 130.0, 79.5, 59.5))
    with pytest.raises(ValueError, match='principal'):
        fovy_of(PinholeCamera(160, 120, 140.0, 140.0, 70.0, 59.5))
    cam = camera_from_fovy(160, 120, fovy_of(CAMERA))
    assert cam.fx == pytest.approx(CAMERA.fx) and cam.cy == pytest.approx(CAMERA.cy)


# --- placement -----------------------------------------------------------------------------
def test_reset_is_reproducible_and_inside_the_split(world):
    world.reset(7, 'train')
    first = world.object_pose()
    world.step(0.3)
    world.reset(7, 'train')
    again = world.object_pose()
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    world.reset(8, 'train')
    assert not np.allclose(world.object_pose()[0], first[0])
    for split, (xr, yranges) in SPLITS.items():
        for seed in range(15):
            world.reset(seed, split)
            p, _ = world.object_pose()
            assert xr[0] <= p[0] <= xr[1]
            assert any(lo <= p[1] <= hi for lo, hi in yranges), (split, seed, p)
            assert p[2] == pytest.approx(world.s.cup.height / 2)
    with pytest.raises(ValueError, match='unknown split'):
        world.reset(0, 'validation')


def test_the_cup_rests_on_the_table(world):
    world.reset(3)
    before = world.object_pose()[0]
    world.step(0.5)
    np.testing.assert_allclose(world.object_pose()[0], before, atol=2e-3)
    assert world.cup_contacts() == (set(), True)


# --- camera --------------------------------------------------------------------------------
def test_render_gives_metric_depth_and_the_cup_where_the_camera_model_projects_it(hand):
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(home_pose=AWAY))
    try:
        w.reset(4)
        rgb, depth = w.render()
        assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
        assert depth.shape == (120, 160) and depth.dtype == np.float32
        # the optical axis meets the table top (z = 0) 0.9 m below the camera
        assert depth[59, 79] == pytest.approx(0.9, abs=0.01)
        # depth is along the optical axis, not along the ray: the same at the table's edge pixels
        assert depth[5, 79] == pytest.approx(0.9, abs=0.01)
        centre, _ = w.object_pose()
        top = centre + [0.0, 0.0, w.s.cup.height / 2]
        in_camera = CAMERA_TO_BASE.inverse().apply(top)
        u, v = np.round(CAMERA.project(in_camera[None])[0]).astype(int)
        assert depth[v, u] == pytest.approx(in_camera[2], abs=0.01)
        r, g, b = rgb[v, u].astype(float) + 1.0
        assert r > 2.0 * g and r > 2.0 * b, rgb[v, u]  # the red cup
        # a table pixel far from the cup is not red and is 0.9 m away
        u2 = u + 40 if u < 80 else u - 40
        assert depth[v, u2] == pytest.approx(0.9, abs=0.01)
        r, g, b = rgb[v, u2].astype(float) + 1.0
        assert r < 1.5 * g, rgb[v, u2]  # the wooden table
        # nothing within the far plane is NaN, never a made-up distance; the floor is 1.65 m
        assert np.all(np.isnan(depth) | (depth > 0.0))
        assert np.nanmax(depth) == pytest.approx(0.9 - mm.FLOOR_Z, abs=0.01)
    finally:
        w.close()


# --- grasps --------------------------------------------------------------------------------
def test_a_good_grasp_lifts_the_cup_by_friction_alone(world):
    world.reset(3)
    reward, success = pick(world)
    assert success and reward > 0.8
    assert world.held and world.lift >= world.s.lift_target and world.tilt < world.s.max_tilt
    parts, table = world.cup_contacts()
    assert 'thumb' in parts and len(parts) >= 2 and not table
    # nothing attaches the cup: open the hand and it falls back to the table
    grasp_pos, _ = world.palm_pose()
    move(world, grasp_pos, grasp_pos, PALM_DOWN, 0.0, 1.0)
    assert world.lift < 0.02
    assert world.task_reward()[1] is False


def test_the_good_grasp_works_on_a_test_split_placement(world):
    world.reset(11, 'test')
    reward, success = pick(world)
    assert success and reward > 0.8


PLACEMENTS = pytest.mark.parametrize('seed, split', [(3, 'train'), (11, 'test')])


@PLACEMENTS
@pytest.mark.parametrize('rotvec', [(np.pi / 2, 0.0, 0.0), (np.pi, 0.0, 0.0),
                                    (0.0, np.pi / 2, 0.0)],
                         ids=['palm_sideways', 'palm_up', 'fingers_up'])
def test_a_wrong_wrist_rotation_fails(world, rotvec, seed, split):
    # fingers_up (palm facing +x) knocks the cup over and may drag it up on its side: the
    # uprightness factor keeps that from scoring
    world.reset(seed, split)
    q = rotations.multiply(PALM_DOWN, rotations.from_rotvec(rotvec))
    reward, success = pick(world, q=q)
    assert not success and reward < 0.5


@PLACEMENTS
@pytest.mark.parametrize('offset', [(0.0, 0.06, 0.0), (0.0, -0.06, 0.0)],
                         ids=['index_side', 'ring_side'])
def test_a_contact_point_6cm_off_across_the_fingers_fails(world, offset, seed, split):
    # along the fingers (x) the power grasp tolerates 6 cm: the curled fingers and the thumb
    # still enclose the cup; across them (y) thumb and fingers miss it
    world.reset(seed, split)
    reward, success = pick(world, offset=offset)
    assert not success and reward < 0.5


def test_closing_the_hand_in_the_air_lifts_nothing(world):
    world.reset(3)
    rest, _ = world.object_pose()
    reward, success = pick(world, offset=(0.0, 0.0, 0.15))
    assert not success and reward < 0.3
    assert world.cup_contacts()[0] == set()
    np.testing.assert_allclose(world.object_pose()[0], rest, atol=2e-3)


def test_the_table_blocks_the_hand(world):
    world.reset(3)
    start, _ = world.palm_pose()
    into_table = np.array([0.3, 0.3, -0.05])  # 5 cm below the table top, away from the cup
    move(world, start, into_table, PALM_DOWN, 0.0, 1.5)
    move(world, into_table, into_table, PALM_DOWN, 0.0, 0.5)
    palm, _ = world.palm_pose()
    assert palm[2] > -0.002  # the palm's inner face rests on the table top (z = 0)
    # the weld pulls with a bounded force: its target stays within max_wrist_lead of the palm
    lead = world.data.mocap_pos[world._mocap] - palm
    assert np.linalg.norm(lead) <= world.s.max_wrist_lead + 1e-9
    assert world.data.mocap_pos[world._mocap][2] > -0.05 + 1e-3
    assert 5.0 < world.wrist_force() < 100.0  # pressing, with an arm's force, not the solver's


# --- interface -----------------------------------------------------------------------------
def test_update_takes_a_closure_or_16_angles_and_rejects_bad_input(world, hand):
    world.reset(0)
    p, q = world.palm_pose()
    np.testing.assert_allclose(world.hand_targets(1.0), hand.pose('closed'))
    np.testing.assert_allclose(world.hand_targets(0.5),
                               (hand.pose('open') + hand.pose('closed')) / 2)
    np.testing.assert_allclose(world.hand_targets(np.full(16, 9.0)), hand.upper)
    world.update(p, q, hand.pose('half'), dt=0.5)
    np.testing.assert_allclose(world.hand_positions(), hand.pose('half'), atol=0.05)
    with pytest.raises(ValueError):
        world.update(p, q, [0.1] * 3, dt=DT)
    with pytest.raises(ValueError):
        world.update(p, [0.0, 0.0, 0.0, 0.0], 0.0, dt=DT)
    with pytest.raises(ValueError):
        world.update([np.nan, 0.0, 0.0], q, 0.0, dt=DT)
    with pytest.raises(ValueError):
        world.step(-0.1)


def test_update_without_dt_advances_by_the_clock(hand):
    now = [100.0]
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, clock=lambda: now[0])
    p, q = w.palm_pose()
    w.update(p, q, 0.0)
    assert w.data.time == 0.0  # the first update after reset only sets targets
    now[0] += 0.05
    w.update(p, q, 0.0)
    assert w.data.time == pytest.approx(0.05)
    now[0] += 5.0  # a stall is capped at max_update_dt
    w.update(p, q, 0.0)
    assert w.data.time == pytest.approx(0.05 + w.s.max_update_dt)


# --- second task: pour ---------------------------------------------------------------------
@pytest.fixture(scope='module')
def pour_world(hand):
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task='pour_cup'))
    yield w
    w.close()


POUR_ANGLE = np.radians(115.0)


def pour(w, angle=POUR_ANGLE, over_bowl=True):
    """Pick the cup palm down, carry it over the bowl (or not), tip it towards the bowl."""
    pick(w, carry=0.0)
    held_at = w.palm_pose()[0]
    bowl = w.bowl_position()
    goal = np.array([bowl[0], bowl[1], held_at[2]]) if over_bowl else held_at
    move(w, held_at, goal, PALM_DOWN, 1.0, 1.0)
    side = np.sign(bowl[1] - w.object_pose()[0][1])
    for k in range(1, 51):
        q = rotations.multiply(rotations.from_rotvec([side * angle * k / 50, 0.0, 0.0]),
                               PALM_DOWN)
        w.update(goal, q, 1.0, dt=DT)
    move(w, goal, goal, q, 1.0, 0.5)
    return w.task_reward()


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match='unknown task'):
        MujocoSettings(task='juggle')


def test_the_bowl_is_placed_by_the_seed_beside_the_cup(pour_world):
    # a fixed offset in base axes (one demonstration serves all placements) plus seeded jitter
    w = pour_world
    offsets = []
    for split in SPLITS:
        for seed in range(10):
            w.reset(seed, split)
            cup, bowl = w.object_pose()[0], w.bowl_position()
            again = (w.reset(seed, split), w.bowl_position())[1]
            np.testing.assert_array_equal(bowl, again)
            offsets.append(bowl[:2] - cup[:2] - w.s.bowl_offset)
            assert bowl[2] == 0.0  # the bowl's footprint on the table
            # the material lies on the cup's floor, none of it in the bowl
            rel = w.material_positions() - cup
            assert np.all(np.hypot(*rel[:, :2].T) <= w.cup.inner_radius - w.s.material.radius)
            assert np.allclose(rel[:, 2], w.cup.floor + w.s.material.radius + 0.0005
                               - w.cup.height / 2)
            assert not w.material_in_bowl().any()
    assert np.all(np.abs(offsets) <= w.s.bowl_jitter) and np.std(offsets) > 0.002
    with pytest.raises(ValueError, match='bowl_offset'):
        MujocoSettings(bowl_offset=(0.0, 0.05))  # the bowl would overlap the cup
    world_pick = MujocoWorld(CAMERA, CAMERA_TO_BASE, w.hand_config)  # same cup draws as pick
    world_pick.reset(5, 'test')
    w.reset(5, 'test')
    # the same placement (x, y); the height is each task's cup instance's
    np.testing.assert_array_equal(world_pick.object_pose()[0][:2], w.object_pose()[0][:2])
    assert world_pick.bowl_position() is None


@PLACEMENTS
def test_a_palm_down_pour_over_the_bowl_covers_the_mouth_and_fails(pour_world, seed, split):
    # the hand lifts and tips the cup over the bowl, but its palm on the mouth keeps the
    # material in the cup
    pour_world.reset(seed, split)
    reward, success = pour(pour_world)
    assert not success and reward < 0.6
    assert pour_world.tilt >= np.radians(100.0) and pour_world.held
    assert not pour_world.material_in_bowl().any()


@pytest.mark.parametrize('kwargs', [dict(angle=0.0), dict(over_bowl=False)],
                         ids=['no_tilt', 'beside_the_bowl'])
def test_a_pour_without_tilt_or_beside_the_bowl_fails(pour_world, kwargs):
    pour_world.reset(3)
    reward, success = pour(pour_world, **kwargs)
    assert not success and reward < 0.8


def test_the_pour_counts_the_material_inside_the_bowl_below_its_rim(pour_world):
    w = pour_world
    w.reset(2, 'test')
    bowl, r = w.bowl_position(), w.s.material.radius
    assert not w.task_reward()[1]  # (nothing holds the cup)
    inside = [0.0, 0.0, w.s.bowl.floor + r]
    cases = {'on_its_floor': (inside, True), 'above_its_rim': ([0.0, 0.0, 0.05], False),
             'beside_it': ([w.s.bowl.radius + 0.01, 0.0, r], False),
             'under_it': ([0.0, 0.0, -0.01], False)}
    adr = w._material_qadr[0]
    for name, (offset, expected) in cases.items():
        w.data.qpos[adr:adr + 3] = bowl + offset
        assert w.material_in_bowl()[0] == expected, name
        assert w.material_in_bowl()[1:].sum() == 0
    with pytest.raises(ValueError, match='floor holds'):
        material_slots(0.02, 0.005, 12)
    slots = material_slots(0.03, 0.005, 10)
    gaps = np.linalg.norm(slots[:, None] - slots[None], axis=2) + np.eye(10)
    assert gaps.min() >= 0.01 and np.all(np.hypot(*slots.T) <= 0.03 - 0.005)
