import copy
import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import yaml

from deft_hand_driver import mano
from deft_hand_driver.hand_config import DEFAULT_CONFIG, HandConfig, load_hand_config
from deft_hand_driver.retargeting import DirectRetargeter, VectorRetargeter, build_retargeter
from deft_hand_driver.retargeting_config import RetargetingConfig, load_retargeting_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'
CONFIGS = sorted(CONFIG_DIR.glob('*_retargeting.yaml'))
FLEXION = ('mcp', 'pip', 'dip', 'thumb_cmc_abd', 'thumb_cmc', 'thumb_mcp', 'thumb_ip')


DUMPER = getattr(yaml, 'CSafeDumper', yaml.SafeDumper)


@functools.lru_cache(maxsize=None)
def raw(path):
    return yaml.load(path.read_text(), Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))


def load(path, **changes):
    hand, config = load_retargeting_config(str(path))
    return hand, dataclasses.replace(config, **changes) if changes else config


def human_keypoints_from_robot(retargeter, q):
    """Robot pose -> robot keypoints -> MANO keypoints (canonical frame, human scale)."""
    config = retargeter.config
    robot = retargeter.robot_keypoints(q)
    human = np.zeros((21, 3))
    seen = {}
    for pair in config.vectors:
        for r, h in zip(pair.robot, pair.human):
            point = config.human_to_robot.T @ robot[retargeter.model.keypoint(r)] / config.scaling
            assert np.allclose(seen.setdefault(h, point), point), 'inconsistent keypoint pairs'
            human[mano.keypoint_index(h)] = point
    return human


def robot_vectors(retargeter, q):
    points = retargeter.robot_keypoints(q)
    kp = retargeter.model.keypoint
    return np.array([points[kp(v.robot[1])] - points[kp(v.robot[0])]
                     for v in retargeter.config.vectors])


def fist(model):
    fingers = {f'{f}{k}': (a, 0.0, 0.0) for f in ('index', 'middle', 'ring', 'pinky')
               for k, a in zip((1, 2, 3), (1.2, 1.3, 1.0))}
    return model.pose_from_anatomical(
        {**fingers, 'thumb1': (0.9, 0.6, 0.0), 'thumb2': (0.6, 0.0, 0.0),
         'thumb3': (0.8, 0.0, 0.0)})


def test_both_hands_ship_a_retargeting_config():
    assert [p.name for p in CONFIGS] == ['leap_16dof_retargeting.yaml',
                                         'sim_16dof_retargeting.yaml']


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_repeats_the_leap_joints_and_poses(path):
    hand, config = load(path)
    leap = load_hand_config(str(CONFIG_DIR / DEFAULT_CONFIG))
    assert hand.joint_names == leap.joint_names
    assert hand.servo_ids == leap.servo_ids
    np.testing.assert_array_equal(hand.lower, leap.lower)
    np.testing.assert_array_equal(hand.upper, leap.upper)
    for pose in leap.named_poses:
        np.testing.assert_array_equal(hand.pose(pose), leap.pose(pose))
    assert sorted(config.kinematics.joint_names) == sorted(hand.joint_names)
    assert set(config.direct) == set(hand.joint_names)


def test_sim_kinematics_match_the_mujoco_hand_geometry():
    # deft_sim.mujoco_models.HandGeometry: palm_half x 0.05, z 0.01, spacing 0.033, links
    # (0.045, 0.035, 0.032), thumb (0.02, 0.045, 0.035, 0.032) from (-0.05, 0.012)
    hand, config = load(CONFIG_DIR / 'sim_16dof_retargeting.yaml')
    rt = build_retargeter(hand, config)
    points = rt.robot_keypoints(hand.pose('open'))
    kp = rt.model.keypoint
    np.testing.assert_allclose(points[kp('index_tip')], [0.05 + 0.112, 0.033, -0.01])
    np.testing.assert_allclose(points[kp('ring_pip')], [0.05 + 0.045, -0.033, -0.01])
    np.testing.assert_allclose(points[kp('thumb_tip')], [-0.05 - 0.132, 0.012, -0.01])
    q = hand.pose('open')
    q[hand.index('index_mcp')] = np.pi / 2  # flexion is towards +z, out of the palm
    np.testing.assert_allclose(rt.robot_keypoints(q)[kp('index_tip')],
                               [0.05, 0.033, -0.01 + 0.112], atol=1e-12)


# The simulated thumb flexes all four joints in one plane and MANO's CMC is fixed in the palm,
# so keypoint vectors see only the sum of its first two angles (regularisation splits it).
REDUNDANT = {'sim_16dof_retargeting.yaml': ('thumb_cmc_abd', 'thumb_cmc')}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_vector_retargeting_round_trip_recovers_robot_poses(path):
    hand, config = load(path, method='vector')
    rt = build_retargeter(hand, config)
    assert isinstance(rt, VectorRetargeter)
    rng = np.random.default_rng(7)
    errors, fits = [], []
    for _ in range(6):
        q = rng.uniform(hand.lower, hand.upper)
        rt.reset()
        out = rt.retarget_keypoints(human_keypoints_from_robot(rt, q))
        error = out - q
        pair = REDUNDANT.get(path.name)
        if pair:  # compare the observable sum, once
            i, j = hand.index(pair[0]), hand.index(pair[1])
            error[i], error[j] = error[i] + error[j], 0.0
        errors.append(np.abs(error))
        fits.append(np.abs(robot_vectors(rt, out) - robot_vectors(rt, q)).max())
    errors = np.array(errors)
    # measured: leap mean 0.0009 rad, max 0.004; sim mean 0.0015, max 0.005 (with the sum)
    assert errors.mean() < 0.01
    assert errors.max() < 0.05
    assert max(fits) < 0.001  # metres: the robot reproduces every vector


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_vector_retargeting_follows_a_moving_hand_with_warm_starts(path):
    hand, config = load(path, method='vector', smoothing_alpha=1.0)
    rt = build_retargeter(hand, config)
    a, b = hand.pose('open') + 0.05, hand.pose('half')
    errors = []
    for t in np.linspace(0.0, 1.0, 8):
        q = np.clip((1 - t) * a + t * b, hand.lower, hand.upper)
        errors.append(np.abs(rt.retarget_keypoints(human_keypoints_from_robot(rt, q)) - q))
    assert np.mean(errors) < 0.01


@pytest.mark.parametrize('method', ['direct', 'vector'])
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_limits_hold_for_extreme_mano_poses(path, method):
    hand, config = load(path, method=method)
    rt = build_retargeter(hand, config)
    rng = np.random.default_rng(11)
    for k in range(6):
        pose = rng.uniform(-np.pi, np.pi, 45) * (1.0 if k % 2 else 3.0)
        q = rt.retarget(pose, rng.uniform(-3, 3, 3))
        assert q.shape == (hand.size,)
        assert np.all(q >= hand.lower) and np.all(q <= hand.upper)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_smoothing_reduces_jitter_under_noisy_keypoints(path):
    hand, _ = load(path)
    jitter = {}
    for alpha in (1.0, 0.3):
        _, config = load(path, method='vector', smoothing_alpha=alpha)
        rt = build_retargeter(hand, config)
        clean = human_keypoints_from_robot(rt, hand.pose('half'))
        rng = np.random.default_rng(5)
        outputs = [rt.retarget_keypoints(clean + rng.normal(0, 0.002, clean.shape))
                   for _ in range(20)]
        jitter[alpha] = np.var(np.diff(outputs[5:], axis=0))
    # an exponential low-pass of white noise: 2 alpha^2 / (2 - alpha) / 2 = 0.053 at 0.3
    assert jitter[0.3] < 0.25 * jitter[1.0]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_direct_mapping_sends_a_flat_hand_to_open_and_a_fist_to_closed(path):
    hand, config = load(path, method='direct')
    rt = build_retargeter(hand, config)
    assert isinstance(rt, DirectRetargeter)
    np.testing.assert_allclose(rt.retarget(np.zeros(45)), hand.pose('open'), atol=1e-9)
    rt.reset()
    q = rt.retarget(fist(rt.mano))
    closed = hand.pose('closed')
    flexion = [i for i, n in enumerate(hand.joint_names) if n.endswith(FLEXION)]
    assert len(flexion) == 13
    assert np.all(q[flexion] > 0.3)
    assert np.all(np.sign(q[closed > 0]) == 1)
    assert hand.closure(q) > 0.8
    assert np.abs(q - closed).max() < 0.5


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_vector_retargeting_of_mano_flexes_the_fingers_for_a_fist(path):
    hand, config = load(path, method='vector', smoothing_alpha=1.0)
    rt = build_retargeter(hand, config)
    flat = rt.retarget(np.zeros(45))
    rt.reset()
    closed = rt.retarget(fist(rt.mano))
    fingers = [hand.index(f'{f}_{j}') for f in ('index', 'middle', 'ring') for j in ('mcp', 'dip')]
    assert np.all(closed[fingers] > flat[fingers] + 0.5)
    assert hand.closure(closed) > hand.closure(flat) + 0.3


@pytest.mark.parametrize('method', ['direct', 'vector'])
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_left_hand_and_mirrored_right_hand_give_the_same_robot_pose(path, method):
    hand, config = load(path, method=method)
    right = build_retargeter(hand, config, mano.ManoModel('right'))
    left = build_retargeter(hand, config, mano.ManoModel('left'))
    rng = np.random.default_rng(3)
    for _ in range(2):
        go, pose = rng.normal(0, 1.0, 3), rng.normal(0, 0.4, 45)
        go_l, pose_l = mano.mirror_pose(go, pose)
        np.testing.assert_allclose(left.retarget(pose_l, go_l), right.retarget(pose, go),
                                   atol=1e-6)


@pytest.mark.parametrize('method', ['direct', 'vector'])
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_joint_order_is_resolved_by_name(path, method):
    data = raw(path)
    hand, config = load(path, method=method)
    shuffled = copy.deepcopy(data)
    order = np.random.default_rng(9).permutation(len(data['joints']))
    shuffled['joints'] = [data['joints'][i] for i in order]
    hand_s = HandConfig.from_dict(shuffled)
    assert hand_s.joint_names != hand.joint_names
    pose = fist(mano.ManoModel()) * 0.7
    named = build_retargeter(hand, config).retarget_named(pose)
    rt_s = build_retargeter(hand_s, config)
    named_s = rt_s.retarget_named(pose)
    assert list(named_s) == hand_s.joint_names
    assert named_s == pytest.approx(named, abs=1e-6)
    rt_s.reset()
    array = rt_s.retarget(pose)
    assert array[hand_s.index('index_pip')] == pytest.approx(named['index_pip'], abs=1e-6)


def test_build_checks_that_the_kinematics_describe_the_hand():
    hand, config = load(CONFIG_DIR / 'leap_16dof_retargeting.yaml')
    text = (CONFIG_DIR / DEFAULT_CONFIG).read_text().replace('index_mcp', 'pinky_mcp')
    other = HandConfig.from_dict(yaml.safe_load(text))
    with pytest.raises(ValueError, match=r"not described: \['pinky_mcp'\], "
                                         r"unknown: \['index_mcp'\]"):
        build_retargeter(other, config)


# --- validation of bad YAML ------------------------------------------------------------------
def r(d):
    return d['retargeting']


def set_(section, key, value):
    def mutate(d):
        d[section][key] = value
    mutate.__name__ = f'{section}_{key}_{value}'.replace(' ', '')
    return mutate


def drop(section, key=None):
    def mutate(d):
        if key is None:
            del d[section]
        else:
            del d[section][key]
    mutate.__name__ = f'drop_{section}_{key}'
    return mutate


def zero_axis(d):
    d['kinematics']['fingers']['index']['joints'][1]['axis'] = [0, 0, 0]


def short_origin(d):
    d['kinematics']['fingers']['thumb']['joints'][2]['origin'] = [0.01, 0.0]


def unknown_kinematic_joint(d):
    name = d['kinematics']['fingers']['ring']['joints'][0]['name']
    d['kinematics']['fingers']['ring']['joints'][0]['name'] = 'ring_cmc'
    d['retargeting']['direct']['ring_cmc'] = d['retargeting']['direct'].pop(name)


def duplicated_kinematic_joint(d):
    fingers = d['kinematics']['fingers']
    fingers['ring']['joints'][3]['name'] = fingers['ring']['joints'][2]['name']


def drop_tip(d):
    del d['kinematics']['fingers']['middle']['tip']


def unknown_human_keypoint(d):
    r(d)['vectors'][0]['human'][1] = 'index4'


def unknown_robot_keypoint(d):
    r(d)['vectors'][2]['robot'][0] = 'index_knuckle'


def negative_weight(d):
    r(d)['vectors'][1]['weight'] = -1.0


def bad_mapping_human(d):
    r(d)['finger_mapping']['little'] = 'ring'


def bad_mapping_robot(d):
    r(d)['finger_mapping']['pinky'] = 'pinky'


def twice_mapped(d):
    r(d)['finger_mapping']['pinky'] = 'ring'


def direct_bad_joint(d):
    r(d)['direct']['index_pip']['joint'] = 4


def direct_bad_angle(d):
    r(d)['direct']['index_pip']['angle'] = 'bend'


def direct_missing(d):
    r(d)['method'] = 'direct'
    del r(d)['direct']['thumb_ip']


def direct_unknown(d):
    r(d)['direct']['pinky_pip'] = {'joint': 2, 'angle': 'flex'}


def not_orthonormal(d):
    r(d)['human_to_robot'] = [[1, 0, 0], [0, 2, 0], [0, 0, 1]]


def unknown_field(d):
    r(d)['smoothing'] = 0.5


def no_vectors(d):
    r(d)['vectors'] = []


BAD = [
    (set_('retargeting', 'method', 'magic'), "retargeting.method: 'magic' is not one of direct"),
    (set_('retargeting', 'smoothing_alpha', 0.0), r'retargeting.smoothing_alpha: 0.0 must be'),
    (set_('retargeting', 'smoothing_alpha', 1.5), r'retargeting.smoothing_alpha: 1.5 must be'),
    (set_('retargeting', 'scaling', -1), r'retargeting.scaling: -1.0 must be > 0'),
    (set_('retargeting', 'scaling', 'big'), r"retargeting.scaling: expected a number, got 'big'"),
    (set_('retargeting', 'regularisation', -0.1), 'retargeting.regularisation: -0.1 must be'),
    (drop('retargeting'), 'retargeting: section required'),
    (drop('kinematics'), 'kinematics: section required'),
    (drop('retargeting', 'finger_mapping'), 'retargeting.finger_mapping: expected a mapping'),
    (zero_axis, r'kinematics.fingers.index.joints\[1\].axis: axis must not be zero'),
    (short_origin, r'kinematics.fingers.thumb.joints\[2\].origin: expected 3 finite numbers'),
    (unknown_kinematic_joint, r"not described: \['ring_(mcp|abd)'\], unknown: \['ring_cmc'\]"),
    (duplicated_kinematic_joint, r"kinematics: joint\(s\) \['ring_pip'\] appear more than once"),
    (drop_tip, 'kinematics.fingers.middle.tip: required'),
    (unknown_human_keypoint, r"retargeting.vectors\[0\].human: unknown MANO keypoint 'index4'"),
    (unknown_robot_keypoint,
     r"retargeting.vectors\[2\].robot: unknown robot keypoint 'index_knuckle'"),
    (negative_weight, r'retargeting.vectors\[1\].weight: -1.0 must be > 0'),
    (bad_mapping_human, "retargeting.finger_mapping: 'little' is not a MANO finger"),
    (bad_mapping_robot, "retargeting.finger_mapping.pinky: 'pinky' is not a robot finger"),
    (twice_mapped, 'retargeting.finger_mapping: a robot finger is mapped twice'),
    (direct_bad_joint, 'retargeting.direct.index_pip.joint: 4 must be 1, 2 or 3'),
    (direct_bad_angle, "retargeting.direct.index_pip.angle: 'bend' is not one of flex"),
    (direct_missing, r"retargeting.direct: no entry for joint\(s\) \['thumb_ip'\]"),
    (direct_unknown, "retargeting.direct.pinky_pip: 'pinky_pip' is not a joint"),
    (not_orthonormal, 'retargeting.human_to_robot: expected an orthonormal 3x3 matrix'),
    (unknown_field, r"retargeting: unknown field\(s\) \['smoothing'\]"),
    (no_vectors, 'retargeting.vectors: the vector method needs vector pairs'),
]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize('mutate, message', BAD, ids=[m.__name__ for m, _ in BAD])
def test_bad_config_is_a_value_error_naming_the_file_and_the_field(tmp_path, path, mutate,
                                                                     message):
    data = copy.deepcopy(raw(path))
    mutate(data)
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.dump(data, Dumper=DUMPER))
    with pytest.raises(ValueError, match=message) as info:
        load_retargeting_config(str(bad))
    assert str(bad) in str(info.value)


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / 'nope.yaml'
    with pytest.raises(ValueError, match=f'cannot read retargeting config {missing}'):
        load_retargeting_config(str(missing))
    broken = tmp_path / 'broken.yaml'
    broken.write_text('- 1\n')
    with pytest.raises(ValueError, match='expected a mapping at the top level'):
        load_retargeting_config(str(broken))


def test_dataclass_validates_when_built_in_code_too():
    _, config = load(CONFIG_DIR / 'sim_16dof_retargeting.yaml')
    with pytest.raises(ValueError, match='retargeting.smoothing_alpha'):
        dataclasses.replace(config, smoothing_alpha=2.0)
    assert isinstance(config, RetargetingConfig)


def test_malformed_keypoints_are_value_errors():
    hand, config = load(CONFIG_DIR / 'leap_16dof_retargeting.yaml')
    rt = build_retargeter(hand, config)
    with pytest.raises(ValueError, match=r'expected 21 finite MANO keypoints'):
        rt.retarget_keypoints(np.zeros((20, 3)))
    with pytest.raises(ValueError, match='global_orient'):
        rt.retarget(np.zeros(44))
