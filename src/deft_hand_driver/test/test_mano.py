import numpy as np
import pytest

from deft_common.rotations import rotvec_to_matrix
from deft_hand_driver import mano
from deft_hand_driver.mano import (
    FINGERS,
    KEYPOINT_NAMES,
    ManoModel,
    keypoint_index,
    mirror_pose,
)

# wrist-to-tip distances of the approximation's flat hand, as documented in mano.py
DOCUMENTED_TIPS = {'index': 0.1708, 'middle': 0.1800, 'pinky': 0.1536, 'ring': 0.1734,
                   'thumb': 0.1301}
ZERO = np.zeros(3)


def rows_of(finger):
    names = [f'{finger}{k}' for k in (1, 2, 3)] + [f'{finger}_tip']
    return [keypoint_index(n) for n in names]


def test_joint_order_is_manos():
    assert mano.POSE_JOINTS[:3] == ('index1', 'index2', 'index3')
    assert mano.POSE_JOINTS[6:9] == ('pinky1', 'pinky2', 'pinky3')
    assert mano.POSE_JOINTS[9:] == ('ring1', 'ring2', 'ring3', 'thumb1', 'thumb2', 'thumb3')
    assert len(KEYPOINT_NAMES) == 21 and KEYPOINT_NAMES[0] == 'wrist'
    assert KEYPOINT_NAMES[16:] == ('index_tip', 'middle_tip', 'pinky_tip', 'ring_tip',
                                   'thumb_tip')
    with pytest.raises(ValueError, match="unknown MANO keypoint 'palm'"):
        keypoint_index('palm')


def test_flat_hand_puts_the_tips_at_the_documented_distances():
    points = ManoModel().forward(ZERO, np.zeros(45))
    for finger, distance in DOCUMENTED_TIPS.items():
        tip = points[keypoint_index(f'{finger}_tip')]
        assert np.linalg.norm(tip - points[0]) == pytest.approx(distance, abs=5e-5)
        assert mano.flat_tip_distances()[finger] == pytest.approx(distance, abs=5e-5)
    # the flat hand lies in the palm plane, fingers along +x, index on -y (a right hand)
    assert np.allclose(points[:, 2][[keypoint_index(f'{f}_tip') for f in FINGERS[:4]]], 0.0)
    assert points[keypoint_index('index1'), 1] < 0 < points[keypoint_index('pinky1'), 1]
    assert points[keypoint_index('thumb_tip'), 1] < points[keypoint_index('index_tip'), 1]


@pytest.mark.parametrize('joint', ['index1', 'index2', 'index3'])
def test_flexing_an_index_joint_moves_only_index_keypoints_beyond_it(joint):
    model = ManoModel()
    flat = model.forward(ZERO, np.zeros(45))
    bent = model.forward(ZERO, model.pose_from_anatomical({joint: (0.9, 0.0, 0.0)}))
    moved = set(np.flatnonzero(np.linalg.norm(bent - flat, axis=1) > 1e-9))
    k = int(joint[-1])
    beyond = set(rows_of('index')[k:])
    assert moved == beyond
    # flexion is towards the palm (+z in the canonical frame)
    assert bent[keypoint_index('index_tip'), 2] > 0.01


def test_global_orient_rotates_about_the_wrist_and_local_keypoints_ignore_it():
    model = ManoModel()
    pose = np.random.default_rng(0).normal(0, 0.3, 45)
    go = np.array([0.4, -1.2, 2.0])
    world = model.forward(go, pose)
    local = model.forward(ZERO, pose)
    assert np.allclose(world - world[0], (local - local[0]) @ rotvec_to_matrix(go).T)
    assert np.allclose(model.local_keypoints(pose, go), model.local_keypoints(pose))


def test_anatomical_angles_invert_pose_from_anatomical():
    model = ManoModel()
    rng = np.random.default_rng(1)
    angles = {j: tuple(rng.uniform(-0.8, 0.8, 3)) for j in mano.POSE_JOINTS}
    pose = model.pose_from_anatomical(angles)
    np.testing.assert_allclose(model.anatomical_angles(pose),
                               [angles[j] for j in mano.POSE_JOINTS], atol=1e-9)
    with pytest.raises(ValueError, match="unknown MANO pose joint 'index4'"):
        model.pose_from_anatomical({'index4': (0, 0, 0)})


def test_a_left_hand_and_the_mirrored_right_hand_look_the_same_to_the_robot():
    right, left = ManoModel('right'), ManoModel('left')
    rng = np.random.default_rng(2)
    go, pose = rng.normal(0, 1.0, 3), rng.normal(0, 0.5, 45)
    go_l, pose_l = mirror_pose(go, pose)
    # the left hand is the mirror image in the world ...
    mirror = np.diag([1.0, -1.0, 1.0])
    assert np.allclose(left.forward(go_l, pose_l), right.forward(go, pose) @ mirror)
    # ... and identical in the canonical (right-equivalent) hand frame
    assert np.allclose(left.local_keypoints(pose_l, go_l), right.local_keypoints(pose, go))
    assert np.allclose(left.anatomical_angles(pose_l), right.anatomical_angles(pose))
    # the thumb of the left flat hand is on +y
    flat = left.forward(ZERO, np.zeros(45))
    assert flat[keypoint_index('thumb_tip'), 1] > 0


def test_malformed_poses_and_sides_are_value_errors():
    model = ManoModel()
    with pytest.raises(ValueError, match=r'global_orient \(3\) and pose \(45\), got 3 and 44'):
        model.forward(ZERO, np.zeros(44))
    with pytest.raises(ValueError, match='not finite'):
        model.forward(ZERO, np.full(45, np.nan))
    with pytest.raises(ValueError, match="MANO side 'both' is not one of right, left"):
        ManoModel('both')


# --- a converted model file (.npz; the official pickle is never read) ------------------------
def rotated_model_arrays(rot, offset):
    """Return the approximation's rest joints/tips expressed in another model frame."""
    rest = mano.approximate_template('right')
    return rest @ rot.T + offset


@pytest.fixture
def model_frame():
    return rotvec_to_matrix(np.array([0.3, -2.0, 0.7])), np.array([0.09, 0.01, -0.02])


def test_npz_template_joints_replace_the_approximation(tmp_path, model_frame):
    rot, offset = model_frame
    rest = rotated_model_arrays(rot, offset)
    path = tmp_path / 'mano_right.npz'
    kintree = np.array([[2 ** 32 - 1] + list(mano.PARENTS[1:]), list(range(16))])
    np.savez(path, J_template=rest[:16], tip_template=rest[16:], kintree_table=kintree)
    model = ManoModel('right', str(path))
    assert np.allclose(model.rest, rest)
    approx = ManoModel()
    pose = np.random.default_rng(4).normal(0, 0.4, 45)
    # the same motion, with its axis-angles expressed in the model file's frame
    pose_model = (pose.reshape(15, 3) @ rot.T).reshape(45)
    assert np.allclose(model.local_keypoints(pose_model), approx.local_keypoints(pose),
                       atol=1e-9)
    assert np.allclose(model.anatomical_angles(pose_model), approx.anatomical_angles(pose),
                       atol=1e-9)


def test_npz_with_regressor_and_vertices_and_shape(tmp_path, model_frame):
    rot, offset = model_frame
    rest = rotated_model_arrays(rot, offset)
    verts = np.zeros((778, 3))
    verts[100:116] = rest[:16]
    for i, f in enumerate(FINGERS):
        verts[mano.TIP_VERTICES[f]] = rest[16 + i]
    regressor = np.zeros((16, 778))
    regressor[np.arange(16), 100 + np.arange(16)] = 1.0
    shapedirs = np.zeros((778, 3, 10))
    shapedirs[:, 0, 0] = 0.01  # beta 0 shifts everything along model x
    path = tmp_path / 'mano.npz'
    np.savez(path, v_template=verts, J_regressor=regressor, shapedirs=shapedirs)
    assert np.allclose(ManoModel('right', str(path)).rest, rest)
    shaped = ManoModel('right', str(path), betas=[2.0])
    assert np.allclose(shaped.rest, rest + [0.02, 0.0, 0.0])


@pytest.mark.parametrize('arrays, message', [
    ({}, 'needs J_template, or J_regressor with v_template'),
    ({'J_template': np.zeros((15, 3))}, r'shape \(15, 3\), expected \(16, 3\)'),
    ({'J_template': np.zeros((16, 3)), 'kintree_table': np.zeros((2, 16))},
     'kintree_table parents .* differ from MANO'),
    ({'J_template': np.zeros((16, 3)), 'tip_template': np.zeros((4, 3))},
     r'tip_template has shape \(4, 3\)'),
])
def test_bad_model_files_are_value_errors_naming_the_file(tmp_path, arrays, message):
    path = tmp_path / 'bad.npz'
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        ManoModel('right', str(path))
    assert str(path) in str(info.value)


def test_model_files_are_never_unpickled(tmp_path):
    path = tmp_path / 'pickled.npz'
    np.savez(path, J_template=np.array([{'evil': 1}], dtype=object))
    with pytest.raises(ValueError, match=f'cannot read MANO model file {path}'):
        ManoModel('right', str(path))
    with pytest.raises(ValueError, match='cannot read MANO model file'):
        ManoModel('right', str(tmp_path / 'missing.npz'))


def test_hands_mean_in_the_file_makes_poses_relative_to_it(tmp_path):
    rest = mano.approximate_template('right')
    mean = np.random.default_rng(7).normal(0, 0.2, 45)
    path = tmp_path / 'mano_mean.npz'
    np.savez(path, J_template=rest[:16], tip_template=rest[16:], hands_mean=mean)
    model, approx = ManoModel('right', str(path)), ManoModel()
    np.testing.assert_array_equal(model.hands_mean, mean)
    pose = np.random.default_rng(8).normal(0, 0.3, 45)
    assert np.allclose(model.local_keypoints(pose), approx.local_keypoints(pose + mean),
                       atol=1e-12)
    # the zero pose is the mean hand, not the flat one; -mean is the flat hand
    assert not np.allclose(model.local_keypoints(np.zeros(45)),
                           approx.local_keypoints(np.zeros(45)), atol=1e-3)
    assert np.allclose(model.local_keypoints(-mean), approx.local_keypoints(np.zeros(45)),
                       atol=1e-12)
    angles = {'index1': (0.8, 0.1, 0.0), 'thumb2': (0.4, 0.0, 0.0)}
    relative = model.pose_from_anatomical(angles)
    assert np.allclose(relative + mean, approx.pose_from_anatomical(angles), atol=1e-12)
    assert np.allclose(model.anatomical_angles(relative), approx.anatomical_angles(
        relative + mean), atol=1e-12)


@pytest.mark.parametrize('arrays, message', [
    ({'hands_mean': np.zeros(44)}, r'hands_mean needs 45 finite values .* got 44'),
    ({'hands_mean': np.full(45, np.nan)}, 'hands_mean needs 45 finite values'),
    ({'J_template': np.zeros((16, 3))}, 'degenerate skeleton'),
])
def test_bad_hands_mean_or_skeleton_is_a_value_error(tmp_path, arrays, message):
    rest = mano.approximate_template('right')
    path = tmp_path / 'bad.npz'
    np.savez(path, **{'J_template': rest[:16], **arrays})
    with pytest.raises(ValueError, match=message):
        ManoModel('right', str(path))


def test_only_converted_npz_files_are_read(tmp_path):
    official = tmp_path / 'MANO_RIGHT.pkl'
    official.write_bytes(b'\x80\x04not read')
    with pytest.raises(ValueError, match=r'expected a converted \.npz file'):
        ManoModel('right', str(official))


def test_model_from_parameter_empty_is_the_approximation_and_errors_name_the_parameter(
        tmp_path):
    assert mano.model_from_parameter('') is None
    rest = mano.approximate_template('right')
    path = tmp_path / 'm.npz'
    np.savez(path, J_template=rest[:16])
    assert np.allclose(mano.model_from_parameter(str(path)).rest[:16], rest[:16])
    with pytest.raises(ValueError, match='parameter mano_model_path: cannot read MANO model'):
        mano.model_from_parameter(str(tmp_path / 'missing.npz'))
