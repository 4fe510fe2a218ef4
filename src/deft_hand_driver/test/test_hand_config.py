import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from deft_hand_driver.hand_config import (
    DEFAULT_CONFIG,
    HandConfig,
    load_hand_config,
    parse_servo_ids,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'
CONFIGS = sorted(CONFIG_DIR.glob('*.yaml'))


def raw(path):
    return yaml.safe_load(path.read_text())


def test_the_package_ships_the_default_config():
    assert DEFAULT_CONFIG in [p.name for p in CONFIGS]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_in_yaml_order(path):
    data = raw(path)
    hand = load_hand_config(str(path))
    assert hand.name == data['name']
    assert hand.joint_names == [j['name'] for j in data['joints']]
    assert hand.servo_ids == [j['id'] for j in data['joints']]
    np.testing.assert_array_equal(hand.lower, [j['lower'] for j in data['joints']])
    np.testing.assert_array_equal(hand.upper, [j['upper'] for j in data['joints']])
    assert hand.size == len(data['joints'])
    assert {'open', 'closed'} <= set(hand.named_poses)
    for pose, values in data['named_poses'].items():
        for joint, angle in (values or {}).items():
            assert hand.pose(pose)[hand.index(joint)] == angle
        unlisted = [hand.index(j) for j in hand.joint_names if j not in (values or {})]
        np.testing.assert_array_equal(hand.pose(pose)[unlisted], 0.0)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_closure_scale_runs_from_open_to_closed(path):
    hand = load_hand_config(str(path))
    open_, closed = hand.pose('open'), hand.pose('closed')
    assert hand.closure(open_) == 0.0
    assert hand.closure(closed) == pytest.approx(1.0)
    assert hand.closure(open_ + 0.25 * (closed - open_)) == pytest.approx(0.25)
    # past either end is clipped
    assert hand.closure(open_ - (closed - open_)) == 0.0
    assert hand.closure(closed + (closed - open_)) == 1.0


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_resolve_clamps_every_joint_to_the_config_limits(path):
    hand = load_hand_config(str(path))
    targets, clamped = hand.resolve(hand.joint_names, (hand.upper + 1.0).tolist())
    np.testing.assert_array_equal(targets, hand.upper)
    assert clamped == hand.joint_names
    targets, clamped = hand.resolve(hand.joint_names, (hand.lower - 1.0).tolist())
    np.testing.assert_array_equal(targets, hand.lower)
    assert clamped == hand.joint_names
    inside = (hand.lower + hand.upper) / 2
    targets, clamped = hand.resolve(hand.joint_names, inside.tolist())
    np.testing.assert_array_equal(targets, inside)
    assert clamped == []


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_resolve_orders_by_name_and_keeps_the_base_for_unnamed_joints(path):
    hand = load_hand_config(str(path))
    last, first = hand.joint_names[-1], hand.joint_names[0]
    mid = (hand.lower + hand.upper) / 2
    targets, clamped = hand.resolve([last, first], [mid[-1], mid[0]])
    expected = hand.pose('open')
    expected[[-1, 0]] = mid[-1], mid[0]
    np.testing.assert_array_equal(targets, expected)
    base = hand.pose('closed')
    targets, _ = hand.resolve([first], [mid[0]], base)
    expected = base.copy()
    expected[0] = mid[0]
    np.testing.assert_array_equal(targets, expected)
    assert clamped == []


def leap():
    return load_hand_config(str(CONFIG_DIR / DEFAULT_CONFIG))


def test_leap_limits_and_poses_have_the_documented_values():
    hand = leap()
    i = hand.index('index_mcp')
    assert (i, hand.servo_ids[i], hand.lower[i], hand.upper[i]) == (0, 1, -0.314, 2.230)
    t = hand.index('thumb_ip')
    assert (t, hand.servo_ids[t], hand.lower[t], hand.upper[t]) == (15, 15, -1.340, 1.880)
    assert hand.pose('closed')[i] == 1.2
    assert hand.pose('closed')[hand.index('index_abd')] == 0.0
    assert hand.closure(hand.pose('half')) == pytest.approx(0.5)


# The real LEAP hand, by servo id: leap-hand/LEAP_Hand_Sim assets/leap_hand/robot.urdf (its
# joints are named by servo id: "1" palm -> mcp_joint, -0.314..2.23, flexion about the finger
# spread axis; "0" mcp_joint -> pip, +-1.047, about the palm normal; "2", "3" the PIP and DIP;
# "12".."15" the thumb from the palm outwards) and leap-hand/LEAP_Hand_API
# python/leap_hand_utils/leap_hand_utils.py LEAPsim_limits (in servo-id order):
# min [-1.047, -0.314, -0.506, -0.366] x 3, then -0.349, -0.47, -1.20, -1.34;
# max [1.047, 2.23, 1.885, 2.042] x 3, then 2.094, 2.443, 1.90, 1.88.
LEAP_BY_ID = {
    0: ('index_abd', -1.047, 1.047), 1: ('index_mcp', -0.314, 2.230),
    2: ('index_pip', -0.506, 1.885), 3: ('index_dip', -0.366, 2.042),
    4: ('middle_abd', -1.047, 1.047), 5: ('middle_mcp', -0.314, 2.230),
    6: ('middle_pip', -0.506, 1.885), 7: ('middle_dip', -0.366, 2.042),
    8: ('ring_abd', -1.047, 1.047), 9: ('ring_mcp', -0.314, 2.230),
    10: ('ring_pip', -0.506, 1.885), 11: ('ring_dip', -0.366, 2.042),
    12: ('thumb_cmc_abd', -0.349, 2.094), 13: ('thumb_cmc', -0.470, 2.443),
    14: ('thumb_mcp', -1.200, 1.900), 15: ('thumb_ip', -1.340, 1.880),
}


@pytest.mark.parametrize('name', ['leap_16dof.yaml', 'leap_16dof_retargeting.yaml'])
def test_leap_servo_ids_drive_the_joints_of_the_real_hand(name):
    data = yaml.safe_load((CONFIG_DIR / name).read_text())
    hand = HandConfig.from_dict(data)
    by_id = {sid: (j, float(lo), float(hi)) for sid, j, lo, hi in
             zip(hand.servo_ids, hand.joint_names, hand.lower, hand.upper)}
    assert by_id == LEAP_BY_ID


def test_leap_clamps_a_single_joint_and_names_it():
    hand = leap()
    targets, clamped = hand.resolve(['index_mcp', 'thumb_ip'], [3.0, 0.5])
    assert clamped == ['index_mcp']
    assert targets[hand.index('index_mcp')] == 2.230
    assert targets[hand.index('thumb_ip')] == 0.5
    targets, clamped = hand.resolve(['thumb_mcp'], [-5.0])
    assert (clamped, targets[hand.index('thumb_mcp')]) == (['thumb_mcp'], -1.200)


def test_resolve_rejects_malformed_targets():
    hand = leap()
    with pytest.raises(ValueError, match='2 joint names but 1 positions'):
        hand.resolve(['index_mcp', 'index_pip'], [0.1])
    with pytest.raises(ValueError, match="joint 'index_pip': target nan is not finite"):
        hand.resolve(['index_pip'], [math.nan])
    with pytest.raises(ValueError, match='not finite'):
        hand.resolve(['index_pip'], [math.inf])
    with pytest.raises(ValueError, match="unknown joint 'pinky_mcp' for hand 'leap_16dof'"):
        hand.resolve(['pinky_mcp'], [0.1])


def test_unknown_named_pose_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown named pose 'fist'; known: open, closed, half"):
        leap().pose('fist')


def test_pose_returns_a_copy():
    hand = leap()
    hand.pose('closed')[:] = 99.0
    assert hand.pose('closed')[0] == 1.2


# --- validation of bad YAML -----------------------------------------------------------------
def drop_joints(d):
    del d['joints']


def drop_upper(d):
    del d['joints'][0]['upper']


def swap_limits(d):
    j = d['joints'][1]
    j['lower'], j['upper'] = j['upper'], j['lower']


def equal_limits(d):
    d['joints'][1]['lower'] = d['joints'][1]['upper']


def duplicate_name(d):
    d['joints'][1]['name'] = d['joints'][0]['name']


def duplicate_id(d):
    d['joints'][1]['id'] = d['joints'][0]['id']


def no_joints(d):
    d['joints'] = []
    d['named_poses'] = {}


def drop_closed(d):
    del d['named_poses']['closed']


def no_named_poses(d):
    del d['named_poses']


def unknown_joint_in_pose(d):
    d['named_poses']['closed']['pinky_tip'] = 0.1


def pose_outside_limits(d):
    d['named_poses']['closed'][d['joints'][0]['name']] = d['joints'][0]['upper'] + 0.1


def pose_nan(d):
    d['named_poses']['closed'][d['joints'][0]['name']] = math.nan


def pose_scalar(d):
    d['named_poses']['closed'] = 1.0


def pose_null_angle(d):
    d['named_poses']['closed'][d['joints'][0]['name']] = None


def named_poses_list(d):
    d['named_poses'] = ['open', 'closed']


def joints_not_a_list(d):
    d['joints'] = 'index_mcp'


BAD = [
    (drop_joints, "missing or malformed field 'joints'"),
    (drop_upper, "missing or malformed field 'upper'"),
    (swap_limits, 'lower >= upper for {j1}'),
    (equal_limits, 'lower >= upper for {j1}'),
    (duplicate_name, 'duplicate joint names'),
    (duplicate_id, 'one distinct servo id per joint'),
    (no_joints, 'no joints'),
    (drop_closed, "named pose 'closed' is required"),
    (no_named_poses, "named pose 'open' is required"),
    (unknown_joint_in_pose, r"named pose 'closed' names unknown joints \['pinky_tip'\]"),
    (pose_outside_limits, "named pose 'closed' outside the joint limits"),
    (pose_nan, "named pose 'closed' outside the joint limits"),
    (pose_scalar, "named pose 'closed' must map joint names to angles"),
    (pose_null_angle, "named pose 'closed': "),
    (named_poses_list, 'named_poses must map pose names'),
    (joints_not_a_list, 'missing or malformed field'),
]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize('mutate, message', BAD, ids=[m.__name__ for m, _ in BAD])
def test_bad_config_is_a_value_error_naming_the_file_and_the_problem(tmp_path, path, mutate,
                                                                       message):
    data = copy.deepcopy(raw(path))
    joint1 = data['joints'][1]['name']
    mutate(data)
    with pytest.raises(ValueError, match=message.format(j1=joint1)):
        HandConfig.from_dict(data)
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message.format(j1=joint1)) as info:
        load_hand_config(str(bad))
    assert str(bad) in str(info.value)


def test_unreadable_or_unparsable_files_name_the_file(tmp_path):
    missing = tmp_path / 'nope.yaml'
    with pytest.raises(ValueError, match=f'cannot read hand config {missing}: No such file'):
        load_hand_config(str(missing))
    broken = tmp_path / 'broken.yaml'
    broken.write_text('joints: [\n')
    with pytest.raises(ValueError, match=f'hand config {broken} is not valid YAML'):
        load_hand_config(str(broken))
    for text in ('', '- a\n- b\n', '42\n'):
        broken.write_text(text)
        with pytest.raises(ValueError, match=f'{broken}: expected a mapping at the top level'):
            load_hand_config(str(broken))


def test_direct_construction_validates_too():
    good = dict(name='two', joint_names=['a', 'b'], servo_ids=[1, 2], lower=[-1.0, -1.0],
                upper=[1.0, 1.0], named_poses={'open': [0.0, 0.0], 'closed': [0.5, 1.0]})
    hand = HandConfig(**copy.deepcopy(good))
    assert hand.closure([0.25, 0.5]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='need a lower and upper limit per joint'):
        HandConfig(**{**copy.deepcopy(good), 'upper': [1.0]})
    with pytest.raises(ValueError, match='one distinct servo id per joint'):
        HandConfig(**{**copy.deepcopy(good), 'servo_ids': [1]})
    with pytest.raises(ValueError, match="named pose 'closed' outside the joint limits"):
        HandConfig(**{**copy.deepcopy(good), 'named_poses': {'open': [0.0, 0.0],
                                                             'closed': [0.0]}})


# --- calibration and servo ids ------------------------------------------------------------
def test_calibration_defaults_to_the_centred_horn_and_reads_per_joint_fields():
    data = raw(CONFIG_DIR / DEFAULT_CONFIG)
    hand = HandConfig.from_dict(data)
    assert hand.zero_ticks == [2048] * 16 and hand.direction == [1] * 16
    data['joints'][2]['zero_ticks'] = 1000
    data['joints'][15]['direction'] = -1
    hand = HandConfig.from_dict(data)
    assert hand.zero_ticks[2] == 1000 and hand.zero_ticks[3] == 2048
    assert hand.direction[15] == -1 and hand.direction[14] == 1


@pytest.mark.parametrize('field, value, message', [
    ('zero_ticks', 4096, r'zero_ticks must be an integer in 0\.\.4095 \(bad for index_pip\)'),
    ('zero_ticks', -1, r'zero_ticks must be an integer in 0\.\.4095'),
    ('zero_ticks', 10.5, "joint 'index_pip': zero_ticks must be an integer, got 10.5"),
    ('zero_ticks', 'centre', "zero_ticks must be an integer, got 'centre'"),
    ('direction', 0, r'direction must be 1 or -1 \(bad for index_pip\)'),
    ('direction', 2, 'direction must be 1 or -1'),
    ('direction', True, 'direction must be an integer, got True'),
    ('id', 300, r'servo ids must be integers 0\.\.252 \(bad for index_pip\)'),
])
def test_bad_calibration_is_a_value_error_naming_the_joint(field, value, message):
    data = copy.deepcopy(raw(CONFIG_DIR / DEFAULT_CONFIG))
    data['joints'][2][field] = value
    with pytest.raises(ValueError, match=message):
        HandConfig.from_dict(data)


def test_direct_construction_checks_the_calibration_lengths():
    good = dict(name='two', joint_names=['a', 'b'], servo_ids=[1, 2], lower=[-1.0, -1.0],
                upper=[1.0, 1.0], named_poses={'open': [0.0, 0.0], 'closed': [0.5, 1.0]})
    assert HandConfig(**good, zero_ticks=[0, 4095], direction=[-1, 1]).zero_ticks == [0, 4095]
    with pytest.raises(ValueError, match='one zero_ticks and one direction per joint, got 1 '
                                         'and 2 for 2 joints'):
        HandConfig(**good, zero_ticks=[5])


def test_servo_ids_override_keeps_everything_else_and_checks_the_length():
    hand = leap()
    ids = list(range(20, 36))
    other = hand.with_servo_ids(ids)
    assert other.servo_ids == ids and hand.servo_ids[0] == 1  # the original is untouched
    assert other.joint_names == hand.joint_names
    np.testing.assert_array_equal(other.pose('closed'), hand.pose('closed'))
    with pytest.raises(ValueError, match="servo_ids: 3 ids given, hand 'leap_16dof' has 16 "
                                         'joints'):
        hand.with_servo_ids([1, 2, 3])
    with pytest.raises(ValueError, match='one distinct servo id per joint'):
        hand.with_servo_ids([1] * 16)


def test_parse_servo_ids():
    assert parse_servo_ids('1,0, 2..4') == [1, 0, 2, 3, 4]
    assert parse_servo_ids('') == []
    with pytest.raises(ValueError, match="servo_ids 'a,b': expected integers"):
        parse_servo_ids('a,b')
