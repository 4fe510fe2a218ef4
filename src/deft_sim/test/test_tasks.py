"""Tests of the task specs: the new tasks' scenes, placements, and scripted human grasps + tau."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from deft_common import rotations  # noqa: E402
from deft_common.rotations import Transform  # noqa: E402
from deft_hand_driver.hand_config import load_hand_config  # noqa: E402
from deft_sim.kinematic_world import SPLITS, PinholeCamera  # noqa: E402
from deft_sim.mujoco_world import (  # noqa: E402
    TASKS,
    MujocoSettings,
    MujocoWorld,
    grape_slots,
    wrap_angle,
)
from deft_sim.task_checks import cheat, run_check, stir_cheat_taus  # noqa: E402
from deft_sim.tasks import TASK_SPECS, TaskSpec, run_scripted, task_spec  # noqa: E402

HAND_YAML = Path(__file__).resolve().parents[2] / 'deft_hand_driver' / 'config' / 'leap_16dof.yaml'
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
CAMERA = PinholeCamera(160, 120, 138.575, 138.575, 79.5, 59.5)
PLACEMENTS = [(3, 'train'), (11, 'test')]


@pytest.fixture(scope='module')
def hand():
    return load_hand_config(str(HAND_YAML))


@pytest.fixture(scope='module')
def worlds(hand):
    made = {}

    def get(task):
        if task not in made:
            made[task] = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand, MujocoSettings(task=task))
        return made[task]
    yield get
    for w in made.values():
        w.close()


def episode(world, spec, seed, split, offset=(0.0, 0.0, 0.0), turn=None, closure=1.0,
            tau_rotations=True):
    """Reset, run the spec's nominal grasp (moved by offset, base axes; turned in the wrist)."""
    world.reset(seed, split)
    position, q = spec.grasp_in(world)
    if turn is not None:
        q = rotations.multiply(q, rotations.from_rotvec(turn))
    reward, success = run_scripted(world, position + np.asarray(offset), q, closure,
                                   spec.waypoints,
                                   tau_rotations=spec.rotations if tau_rotations else None)
    assert 0.0 <= reward <= 1.0
    return reward, success


# --- specs ---------------------------------------------------------------------------------
def test_every_world_task_has_a_spec_in_the_episode_node_format():
    assert set(TASK_SPECS) == set(TASKS)
    for name, spec in TASK_SPECS.items():
        assert spec.name == name and spec.text and spec.success
        assert spec.waypoints.shape[1] == 3 and len(spec.tau) % 3 == 0
        assert all(isinstance(v, float) for v in spec.tau)
    with pytest.raises(ValueError, match='unknown task'):
        task_spec('juggle')
        assert spec.rotations.shape == spec.waypoints.shape
        assert all(isinstance(v, float) for v in spec.tau_rotations)
    with pytest.raises(ValueError, match='triples'):
        TaskSpec('x', 'x', 'cup', 'x', ((0, 0, 0),), (0, 0, 0, 1), (0, 0, 0), 'closed', (0.1,))
    assert TASK_SPECS['pick_cup'].tau_rotations == ()  # no turns: zeros, one per waypoint


def test_tau_rotations_need_one_finite_rotation_vector_per_waypoint(worlds):
    args = ('x', 'x', 'cup', 'x', ((0, 0, 0),), (0, 0, 0, 1), (0, 0, 0), 'closed')
    spec = TaskSpec(*args, tau=(0.0, 0.0, 0.1, 0.0, 0.1, 0.1),
                    tau_rotations=(0.0, 0.0, 0.0, 0.5, 0.0, 0.0))
    np.testing.assert_array_equal(spec.rotations, [[0, 0, 0], [0.5, 0, 0]])
    np.testing.assert_array_equal(TaskSpec(*args, tau=(0.0, 0.0, 0.1)).rotations, [[0, 0, 0]])
    for bad in [(0.0, 0.0, 0.0), (0.0,) * 5, (0.0, 0.0, 0.0, np.nan, 0.0, 0.0)]:
        with pytest.raises(ValueError, match='tau_rotations'):
            TaskSpec(*args, tau=(0.0, 0.0, 0.1, 0.0, 0.1, 0.1), tau_rotations=bad)
    w = worlds('pick_cup')
    w.reset(0)
    with pytest.raises(ValueError, match='tau_rotations'):
        run_scripted(w, *w.palm_pose(), 0.0, [[0.0, 0.0, 0.1]], tau_rotations=[[0.0] * 3] * 2)
    # left-multiplied, base axes: a quarter turn about base z of a palm-down wrist
    q = rotations.turned(rotations.from_rotvec([np.pi, 0.0, 0.0]), [0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(rotations.rotate(q, [1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rotations.rotate(q, [0.0, 0.0, 1.0]), [0.0, 0.0, -1.0], atol=1e-9)


# --- scenes and placements -----------------------------------------------------------------
def scene(w):
    """Return everything reset places: object pose, bowl, container, grapes (flat array)."""
    parts = list(w.object_pose()) + [w.grape_positions().ravel(), w.material_positions().ravel()]
    parts += [p for p in (w.bowl_position(), w.container_position()) if p is not None]
    return np.concatenate(parts)


@pytest.mark.parametrize('task', ['pick_spoon', 'open_drawer', 'pour_cup', 'scoop_grape',
                                  'stir_spoon'])
def test_the_scene_compiles_resets_per_seed_and_rests(worlds, task):
    w = worlds(task)
    w.reset(7, 'train')
    first = scene(w)
    w.step(0.5)  # nothing moves on its own: the spoon and grapes rest, the drawer stays shut
    np.testing.assert_allclose(scene(w), first, atol=2e-3)
    assert w.task_reward() == (pytest.approx(0.0, abs=0.3), False)
    w.reset(7, 'train')
    np.testing.assert_array_equal(scene(w), first)
    w.reset(7, 'test')
    assert not np.allclose(scene(w)[:3], first[:3])
    w.reset(8, 'train')
    assert not np.allclose(scene(w)[:3], first[:3])


@pytest.mark.parametrize('task', ['pick_spoon', 'open_drawer', 'scoop_grape', 'stir_spoon'])
def test_placements_lie_in_the_documented_split_ranges(worlds, task):
    w = worlds(task)
    for split, (xr, yranges) in SPLITS.items():
        for seed in range(10):
            w.reset(seed, split)
            p, q = w.object_pose()
            assert xr[0] <= p[0] <= xr[1]
            assert any(lo <= p[1] <= hi for lo, hi in yranges), (split, seed, p)
            x_axis = rotations.rotate(q, [1.0, 0.0, 0.0])
            yaw = abs(np.arctan2(x_axis[1], x_axis[0]))
            if task == 'open_drawer':  # the cabinet faces the robot, turned by at most 10 deg
                assert p[2] == 0.0 and w.opened == 0.0
                assert yaw <= w.s.max_cabinet_yaw + 1e-9
            else:
                assert p[2] == pytest.approx(w.spoon.rest_height + w.spoon.handle_half[2])
            if task in ('scoop_grape', 'stir_spoon'):  # the ladle points away from the robot
                assert yaw <= w.s.max_spoon_yaw + 1e-9
                assert w.tip_position()[2] == pytest.approx(w.spoon.bowl_half[2] * 2, abs=1e-6)
            if task == 'stir_spoon':  # the pot at its fixed offset from the resting bowl
                off = w.container_position()[:2] - w.tip_position()[:2] - w.s.pot_offset
                assert np.all(np.abs(off) <= w.s.pot_jitter + 1e-9)
            if task == 'scoop_grape':  # the grapes in the dish, none in the spoon (default)
                g, dish = w.grape_positions(), w.container_position()
                assert np.all(np.hypot(*(g[:, :2] - dish[:2]).T)
                              <= w.s.dish.radius - w.s.grapes.radius)
                assert w.grapes_in_spoon().sum() == w.s.grapes_in_bowl


# --- scripted human grasps: the nominal one succeeds, wrong ones fail ----------------------
@pytest.mark.parametrize('seed, split', PLACEMENTS)
@pytest.mark.parametrize('task', TASKS)
def test_the_nominal_grasp_and_tau_succeed(worlds, task, seed, split):
    w, spec = worlds(task), TASK_SPECS[task]
    w.reset(seed, split)
    goal = rotations.turned(spec.grasp_in(w)[1], spec.rotations[-1])
    reward, success = episode(w, spec, seed, split)
    assert success and reward > 0.9
    parts, support = w.object_contacts()
    assert len(parts) >= 2 and not support
    if spec.tau_rotations:  # the wrist ends turned as tau_rotations says (within the weld's give)
        assert rotations.angle_between(w.palm_pose()[1], goal) < np.radians(10.0)
    if task in ('pick_cup', 'pick_spoon'):  # held from lift-off to the end, carried, held 1 s
        assert not w.dropped and w.carried >= 0.1 and w.held_for >= 1.0
    if task in ('pick_cup', 'pick_spoon', 'scoop_grape'):  # nothing attaches it: opened, the
        p, q = w.palm_pose()  # hand drops it
        for _ in range(50):
            w.update(p, q, 0.0, dt=0.02)
        assert w.lift < 0.05 and not w.task_reward()[1]
        assert task == 'scoop_grape' or (w.dropped and w.held_for == 0.0)


WRONG = {  # (task, id): turn of the wrist (rotvec, wrist frame) or offset of the grasp (m)
    ('pick_spoon', 'fingers_along_the_handle'): dict(turn=(0.0, 0.0, np.pi / 2)),
    ('pick_spoon', 'contact_7cm_towards_the_end'): dict(offset=('object', -0.07, 0.0, 0.0)),
    ('pick_spoon', 'contact_7cm_towards_the_bowl'): dict(offset=('object', 0.07, 0.0, 0.0)),
    ('pick_spoon', 'hand_not_closed'): dict(closure=0.0),
    ('open_drawer', 'fingers_along_the_bar'): dict(turn=(0.0, 0.0, np.pi / 2)),
    ('open_drawer', 'palm_away'): dict(turn=(np.pi, 0.0, 0.0)),
    ('open_drawer', 'contact_7cm_high'): dict(offset=('object', 0.0, 0.0, 0.07)),
    ('open_drawer', 'contact_11cm_low'): dict(offset=('object', 0.0, 0.0, -0.11)),
    ('open_drawer', 'hand_half_closed'): dict(closure=0.5),
    # the front 6 cm below the bar: fingers graze the bar, 2 of 16 placements pass (measured)
    ('open_drawer', 'front_6cm_below_the_handle'): dict(offset=('object', 0.0, 0.0, -0.06)),
    ('pour_cup', 'palm_up'): dict(turn=(np.pi, 0.0, 0.0)),
    # pour: the palm 6 cm towards the fingertips (only they reach the cup) fails on all 12
    # measured placements; 6 cm the other way (the cup deep in the fingers), fingers pointing
    # down, or 6 cm higher succeed on 12, 9 and 2 of them: grasps that still hold and pour
    ('pour_cup', 'contact_6cm_towards_the_fingertips'): dict(offset=('base', 0.0, 0.06, 0.0)),
    # the ladle's loose curled-finger grip tolerates some wrong grasps. scoop: these (and 7 cm
    # towards the neck) fail on all 20 measured placements (10 train, 10 test); turned
    # fingers-up it still scoops on 15/20. stir: turned fingers-up or 7 cm towards the neck
    # succeed on some placements; these fail on all 6 measured placements (3 train, 3 test)
    ('scoop_grape', 'palm_up'): dict(turn=(np.pi, 0.0, 0.0)),
    ('scoop_grape', 'contact_7cm_towards_the_end'): dict(offset=('object', -0.07, 0.0, 0.0)),
    ('scoop_grape', 'hand_half_closed'): dict(closure=0.5),
    ('stir_spoon', 'palm_up'): dict(turn=(np.pi, 0.0, 0.0)),
    ('stir_spoon', 'contact_7cm_towards_the_end'): dict(offset=('object', -0.07, 0.0, 0.0)),
    ('stir_spoon', 'contact_4cm_beside_the_handle'): dict(offset=('object', 0.0, 0.04, 0.0)),
}


@pytest.mark.parametrize('seed, split', PLACEMENTS)
@pytest.mark.parametrize('task, case', list(WRONG), ids=[f'{t}-{c}' for t, c in WRONG])
def test_a_wrong_rotation_contact_or_hand_fails(worlds, task, case, seed, split):
    w = worlds(task)
    kwargs = dict(WRONG[task, case])
    if 'offset' in kwargs:  # along the object's own axes or base axes
        frame, *offset = kwargs.pop('offset')
        w.reset(seed, split)
        kwargs['offset'] = rotations.rotate(w.object_pose()[1], offset) \
            if frame == 'object' else np.asarray(offset)
    reward, success = episode(w, TASK_SPECS[task], seed, split, **kwargs)
    assert not success and reward < 0.6


# --- pick_cup, pick_spoon: cheats a lazy policy would find ---------------------------------
PICK_SEEDS = [(seed, split) for split in ('train', 'test') for seed in range(8)]
PICK_CHEATS = {  # (task, cheat): how many of the 16 PICK_SEEDS may succeed (measured with the
    # object instances of instances.py: 0 unless said); moves and turns are in the wrist frame
    # (x along the fingers, z the approach axis)
    ('pick_cup', 'push'): 0, ('pick_cup', 'roll'): 0, ('pick_cup', 'lift_only'): 0,
    ('pick_cup', 'open_hand'): 0, ('pick_cup', 'half_closed'): 0,
    ('pick_cup', 'moved_5cm_along_the_fingers'): 0,
    ('pick_cup', 'moved_5cm_back'): 5,  # measured 4 of 16: the tallest cups' rims
    ('pick_cup', 'moved_5cm_across_the_fingers'): 0, ('pick_cup', 'turned_fingers_up'): 0,
    ('pick_spoon', 'push'): 0, ('pick_spoon', 'lift_only'): 0,
    ('pick_spoon', 'open_hand'): 0, ('pick_spoon', 'half_closed'): 0,
    ('pick_spoon', 'moved_5cm_along_the_fingers'): 2,  # measured 1 of 16
    ('pick_spoon', 'moved_5cm_across_the_fingers'): 1,  # (towards the bowl; the end: 1/16)
    ('pick_spoon', 'turned_palm_sideways'): 3,  # measured 2 of 16
    ('pick_spoon', 'turned_fingers_up'): 2,  # measured 1 of 16
    ('pick_spoon', 'turned_about_the_approach'): 3,  # measured 2 of 16
    # not here: the spoon moved_5cm_back (15 of 16 succeed): the nominal spoon grasp cradles
    # the handle on the curled index, middle and ring fingers (no thumb), and 5 cm back along
    # the fingers they still curl under it; failing that needs a thumb-opposed pinch grasp
}


def run_pick_cheat(w, spec, name, seed, split):
    """Run a pick task's cheat (task_checks.CHEATS); return (success, moved, tilt)."""
    w.reset(seed, split)
    centre = w.object_pose()[0]
    reward, success = run_check(w, spec, seed, split, cheat(spec.name, name))
    assert 0.0 <= reward <= 1.0
    return success, float(np.linalg.norm(w.object_pose()[0][:2] - centre[:2])), w.tilt


@pytest.mark.parametrize('task, cheat', list(PICK_CHEATS),
                         ids=[f'{t}-{c}' for t, c in PICK_CHEATS])
def test_a_pick_cheat_fails_on_most_placements(worlds, task, cheat):
    w, spec = worlds(task), TASK_SPECS[task]
    runs = [run_pick_cheat(w, spec, cheat, seed, split) for seed, split in PICK_SEEDS]
    assert sum(ok for ok, _, _ in runs) <= PICK_CHEATS[task, cheat]
    if cheat == 'push':  # the cheat did what it says: slid the object along, off its support
        assert np.median([moved for _, moved, _ in runs]) > 0.05
    if cheat == 'roll':  # knocked the cup over
        assert np.median([tilt for _, _, tilt in runs]) > np.radians(60.0)


def test_a_cup_held_palm_sideways_is_a_side_grasp_that_carries_it(worlds):
    # Turned 90 deg about the fingers, the palm shoves the cup ~3.5 cm and the fingers wrap its
    # upper half: a side power grasp people use, and it holds through the carry (16 of 16
    # measured). About the approach axis, the symmetric cup is grasped the same way.
    w, spec = worlds('pick_cup'), TASK_SPECS['pick_cup']
    assert run_pick_cheat(w, spec, 'turned_palm_sideways', 3, 'train')[0]


def test_a_cup_dropped_during_the_carry_fails_even_if_caught_again(worlds):
    w, spec = worlds('pick_cup'), TASK_SPECS['pick_cup']
    w.reset(3, 'train')
    position, q = spec.grasp_in(w)
    run_scripted(w, position, q, 1.0, spec.waypoints[:1])  # lifted 15 cm and held
    assert w.held_for > 0.5 and not w.dropped
    for _ in range(5):  # loosen the grip for 0.1 s: the cup slips out of the hand
        w.update(*w.palm_pose(), 0.0, dt=0.02)
    assert w.dropped and w.held_for == 0.0 and not w.task_reward()[1]
    w.reset(3, 'train')
    assert not w.dropped and w.carried == 0.0 and w.held_for == 0.0


@pytest.mark.parametrize('turn', [(np.pi, 0.0, 0.0), (0.0, np.pi / 2, 0.0)],
                         ids=['palm_up', 'fingers_up'])
def test_a_spoon_grasp_turned_palm_up_or_fingers_up_mostly_fails(worlds, turn):
    # The rest holds the handle 5 cm up, so a hand that comes from below can sometimes cradle
    # the spoon (measured: 1 of these 4 placements each); the nominal grasp lifts it in all 4.
    w, spec = worlds('pick_spoon'), TASK_SPECS['pick_spoon']
    placements = [(3, 'train'), (11, 'test'), (5, 'train'), (2, 'test')]
    wins = sum(episode(w, spec, seed, split, turn=turn)[1] for seed, split in placements)
    assert wins <= 1


def test_the_drawer_reward_is_the_fraction_pulled_by_the_handle(worlds):
    w = worlds('open_drawer')
    w.reset(0)
    closed_front = w.object_pose()[0]
    for pulled, success in [(0.0, False), (0.05, False), (0.6 * 0.16, True), (0.16, True)]:
        w.pulled = pulled
        reward, ok = w.task_reward()
        assert reward == pytest.approx(pulled / w.s.drawer.travel) and ok is success
    w.pulled, w.data.qpos[w._obj_qadr] = 0.0, 0.16  # opened without the hand: nothing counts
    w.track()
    assert w.pulled == 0.0 and w.task_reward() == (0.0, False)
    # the object frame moves out with the drawer, towards the robot
    assert w.object_pose()[0][0] == pytest.approx(closed_front[0] - 0.16 * np.cos(
        np.arctan2(*rotations.rotate(w.object_pose()[1], [1.0, 0.0, 0.0])[[1, 0]])), abs=1e-9)


def test_a_push_into_the_cabinet_does_not_open_the_drawer(worlds):
    w, spec = worlds('open_drawer'), TASK_SPECS['open_drawer']
    for seed, split in PLACEMENTS:
        w.reset(seed, split)
        reward, success = run_scripted(w, *spec.grasp_in(w), 1.0, [0.05, 0.0, 0.0])
        assert not success and reward < 0.05


def test_an_unknown_object_model_is_rejected(hand):
    from deft_sim import mujoco_models as mm
    with pytest.raises(ValueError, match='unknown object'):
        mm.build_mjcf(hand.joint_names, hand.lower, hand.upper, (0, 0, 1), (1, 0, 0, 0), 45.0,
                      (64, 48), obj='teapot')


# --- pour, scoop and stir: what their criteria count ---------------------------------------
POUR_CHEATS = ['tilt_in_place', 'palm_down_over_the_mouth', 'lift_only', 'open_hand']


@pytest.mark.parametrize('name', POUR_CHEATS)
def test_a_pour_cheat_fails_on_most_placements(worlds, name):
    # measured: each fails on all 16 placements of seeds 0-7 of both splits (the demo: 16/16)
    w, spec = worlds('pour_cup'), TASK_SPECS['pour_cup']
    placements = [(0, 'train'), (1, 'train'), (2, 'train'), (0, 'test'), (1, 'test'),
                  (2, 'test')]
    wins = 0
    for seed, split in placements:
        reward, success = run_check(w, spec, seed, split, cheat('pour_cup', name))
        wins += success
        assert reward < 0.6
        if name != 'open_hand':
            assert not w.material_in_bowl().any()
    assert wins <= 1


SCOOP_PLACEMENTS = [(seed, split) for split in ('train', 'test') for seed in range(4)]
# a lazy policy's scoop (task_checks.CHEATS): no push (tilt and lift in place), no lift, lifted
# level or tip down, an open hand
SCOOP_CHEATS = ['lift_only', 'push_only', 'push_and_lift_level', 'tip_down', 'no_push',
                'open_hand']


def test_the_scoop_starts_with_no_grape_in_the_spoon_and_the_demo_gathers_some(worlds):
    # measured over 10 train + 10 test placements: the demo 20/20, every cheat below 0/20
    w, spec = worlds('scoop_grape'), TASK_SPECS['scoop_grape']
    assert w.s.grapes_in_bowl == 0
    wins = 0
    for seed, split in SCOOP_PLACEMENTS:
        w.reset(seed, split)
        assert not w.grapes_in_spoon().any()
        wins += run_check(w, spec, seed, split)[1]
    assert wins >= 7


@pytest.mark.parametrize('case', SCOOP_CHEATS)
def test_a_scoop_without_push_tip_up_and_a_closed_hand_fails(worlds, case):
    # the grapes are pushed ahead unless the tip runs under them; lifted level or tip down they
    # roll out of the open tip; an open hand drops the spoon
    w, spec = worlds('scoop_grape'), TASK_SPECS['scoop_grape']
    wins = sum(run_check(w, spec, seed, split, cheat('scoop_grape', case))[1]
               for seed, split in SCOOP_PLACEMENTS)
    assert wins <= 2
    if case in ('lift_only', 'tip_down'):  # the spoon came up, no grape in it
        assert w.lift > 0.05 and not w.grapes_in_spoon().any()


def test_the_scoop_without_its_tip_up_turn_keeps_fewer_grapes_than_the_demo(worlds):
    # A weakness of the twin, reported as it is (docs/benchmarks.md): the demo's wrist path
    # without its turn (push, swing back 3.3 cm, lift level) keeps a grape on about half the
    # configurations (measured 8/20 on the nominal ladle, 12/20 with the object instances:
    # dragged back, the grapes roll deeper into the tray). The push under the grapes is what
    # the check needs; a push and a straight lift keeps none (above).
    w, spec = worlds('scoop_grape'), TASK_SPECS['scoop_grape']
    wins = sum(run_check(w, spec, seed, split, cheat('scoop_grape', 'no_turn'))[1]
               for seed, split in SCOOP_PLACEMENTS)
    demo = sum(run_check(w, spec, seed, split)[1] for seed, split in SCOOP_PLACEMENTS)
    assert wins <= 6 and wins < demo


STIR_CHEATS = ['straight_stroke', 'wiggle_60deg', 'half_circle', 'above_the_rim',
               'beside_the_pot', 'no_circle']


@pytest.mark.parametrize('case', STIR_CHEATS)
def test_a_stir_that_does_not_wind_about_the_pot_fails(worlds, case):
    # measured over 8 train and 8 test placements: every cheat fails on all of them (the
    # half circle winds up to 0.67 turns: the tip lags, the lift out adds a little)
    w, spec = worlds('stir_spoon'), TASK_SPECS['stir_spoon']
    tau = stir_cheat_taus(spec)[case]
    for seed, split in PLACEMENTS:
        w.reset(seed, split)
        reward, success = run_scripted(w, *spec.grasp_in(w), 1.0, tau)
        assert not success and reward < 0.9 and abs(w.stir_angle) < 1.5 * np.pi


def test_a_stir_with_an_open_hand_fails(worlds):
    w, spec = worlds('stir_spoon'), TASK_SPECS['stir_spoon']
    for seed, split in PLACEMENTS:
        assert not episode(w, spec, seed, split, closure=0.0)[1]


def test_the_winding_angle_and_the_grape_slots():
    assert wrap_angle(np.pi) == pytest.approx(np.pi)
    assert wrap_angle(-np.pi) == pytest.approx(np.pi)
    assert wrap_angle(1.5 * np.pi) == pytest.approx(-0.5 * np.pi)
    assert wrap_angle(-0.1) == pytest.approx(-0.1)
    slots = grape_slots(0.065, 0.009, 0.012, 6)
    assert slots.shape == (6, 2) and np.all(slots[:, 0] >= 0.012 + 0.009)
    assert np.all(np.hypot(*slots.T) <= 0.065 - 0.009)
    gaps = np.linalg.norm(slots[:, None] - slots[None], axis=2) + np.eye(6)
    assert gaps.min() >= 2 * 0.009
    with pytest.raises(ValueError, match='holds'):
        grape_slots(0.03, 0.009, 0.012, 6)


@pytest.mark.parametrize('task', ['pour_cup', 'scoop_grape', 'stir_spoon'])
def test_the_camera_sees_the_scene(hand, task):
    # the hand out of view: the object, the bowl, dish and grapes, or the pot are rendered
    w = MujocoWorld(CAMERA, CAMERA_TO_BASE, hand,
                    MujocoSettings(task=task, home_pose=(0.1, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0)))
    try:
        for seed, split in PLACEMENTS:
            w.reset(seed, split)
            rgb, depth = w.render()
            if task == 'pour_cup':  # the material in the cup, the bowl's floor
                material = w.material_positions()  # the sphere nearest the axis: a taller
                centre = w.object_pose()[0]  # cup's wall hides those at the rim
                nearest = material[np.argmin(np.hypot(*(material[:, :2] - centre[:2]).T))]
                top = nearest + [0, 0, w.s.material.radius]
                targets = [(top, w.s.material.rgba),
                           (w.bowl_position() + [0, 0, w.s.bowl.floor], w.s.bowl.inside_rgba)]
            elif task == 'scoop_grape':
                in_dish = w.grape_positions()[~w.grapes_in_spoon()]  # (the neck hides some)
                targets = [(g + [0, 0, w.s.grapes.radius], w.s.grapes.rgba) for g in in_dish]
            else:
                targets = [(w.container_position() + [0, 0, 0.004], w.s.pot.inside_rgba)]
            if task != 'pour_cup':
                targets.append((w.object_pose()[0] + [0, 0, 0.005], w.spoon.rgba))
            for point, rgba in targets:
                camera_point = CAMERA_TO_BASE.inverse().apply(point)
                u, v = np.round(CAMERA.project(camera_point[None])[0]).astype(int)
                assert depth[v, u] == pytest.approx(camera_point[2], abs=0.01), (task, point)
                # the colour within a pixel of the point (a 5 mm sphere is 1-2 pixels wide)
                colour = rgb[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).astype(float) + 1.0
                ref = np.asarray(rgba[:3]) + 0.01
                cos = colour @ ref / np.linalg.norm(colour, axis=1) / np.linalg.norm(ref)
                assert cos.max() > 0.97, (task, point, rgb[v, u], rgba)
    finally:
        w.close()
