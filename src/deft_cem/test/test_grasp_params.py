import numpy as np
import pytest

from deft_cem.grasp_params import ParameterSpace
from deft_common import rotations

JOINTS = ['a', 'b', 'c']


@pytest.fixture
def space():
    return ParameterSpace(JOINTS, [0.0, -1.0, 0.0], [1.0, 1.0, 2.0])


def test_names_layout(space):
    assert space.names == ['contact_x', 'contact_y', 'contact_z', 'wrist_rx', 'wrist_ry',
                           'wrist_rz', 'hand_a', 'hand_b', 'hand_c', 'tau_scale']
    assert space.size == 10
    std = space.default_std(0.02, 0.2, 0.1, 0.05)
    assert std.tolist() == [0.02] * 3 + [0.2] * 3 + [0.1] * 3 + [0.05]


def test_xi_matches_joints_by_name(space):
    xi = space.xi([0.5, 0.1, 0.05], [1, 0, 0, 0], ['c', 'a', 'b'], [1.5, 0.2, -0.3])
    np.testing.assert_allclose(xi[6:9], [0.2, -0.3, 1.5])
    np.testing.assert_allclose(xi[3:6], [np.pi, 0, 0])
    assert xi[-1] == 1.0


def test_zero_residual_reproduces_the_prior(space):
    q = rotations.from_rotvec([0.3, -0.2, 0.1])
    xi = space.xi([0.5, 0.1, 0.05], q, JOINTS, [0.2, 0.0, 1.0])
    cmd = space.command(xi, np.zeros(space.size))
    np.testing.assert_allclose(cmd.contact_point, [0.5, 0.1, 0.05])
    assert rotations.angle_between(cmd.wrist_orientation, q) < 1e-9
    np.testing.assert_allclose(cmd.hand_joint_positions, [0.2, 0.0, 1.0])


def test_wrist_residual_turns_about_the_wrist_axes(space):
    top_down = [1.0, 0.0, 0.0, 0.0]
    xi = space.xi([0, 0, 0], top_down, JOINTS, [0, 0, 0])
    eps = np.zeros(space.size)
    eps[5] = 0.4  # roll about the wrist's own z (approach) axis
    cmd = space.command(xi, eps)
    approach = rotations.rotate(cmd.wrist_orientation, [0, 0, 1])
    np.testing.assert_allclose(approach, [0, 0, -1], atol=1e-12)  # still pointing down
    assert rotations.angle_between(cmd.wrist_orientation, top_down) == pytest.approx(0.4)


def test_hand_and_tau_are_clipped(space):
    xi = space.xi([0, 0, 0], [0, 0, 0, 1], JOINTS, [0.9, 0.0, 1.9])
    eps = np.zeros(space.size)
    eps[6:9] = [0.5, -5.0, 0.5]
    eps[-1] = 5.0
    cmd = space.command(xi, eps)
    np.testing.assert_allclose(cmd.hand_joint_positions, [1.0, -1.0, 2.0])
    assert cmd.tau_scale == 2.0


def test_errors(space):
    with pytest.raises(ValueError, match='no target for hand joints'):
        space.xi([0, 0, 0], [0, 0, 0, 1], ['a'], [0.0])
    with pytest.raises(ValueError, match='entries'):
        space.command(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match='non-finite'):
        space.command(np.full(space.size, np.nan), np.zeros(space.size))
    with pytest.raises(ValueError, match='>= 0'):
        space.default_std(-1, 0, 0, 0)


def test_bounds_are_a_box_on_eps_around_xi():
    space = ParameterSpace(JOINTS, [0.0, -1.0, 0.0], [1.0, 1.0, 2.0], tau_scale_bounds=(0.5, 1.5),
                           contact_offset_max=0.05, wrist_residual_max=0.3)
    xi = space.xi([0.4, 0.0, 0.1], [0, 0, 0, 1], JOINTS, [0.25, 0.5, 2.0])
    lower, upper = space.bounds(xi)
    np.testing.assert_allclose(lower, [-0.05] * 3 + [-0.3] * 3 + [-0.25, -1.5, -2.0, -0.5])
    np.testing.assert_allclose(upper, [0.05] * 3 + [0.3] * 3 + [0.75, 0.5, 0.0, 0.5])
    default = ParameterSpace(JOINTS, [0.0, -1.0, 0.0], [1.0, 1.0, 2.0])
    assert default.bounds(xi)[1][0] == 0.08
    assert default.bounds(xi)[1][3] == pytest.approx(np.pi / 2)  # side <-> top-down in reach


def test_commands_clip_the_residual_to_the_bounds_and_say_so():
    space = ParameterSpace(JOINTS, [0.0, -1.0, 0.0], [1.0, 1.0, 2.0],
                           contact_offset_max=0.05, wrist_residual_max=0.3)
    q = rotations.from_rotvec([0.2, 0.0, 0.0])
    xi = space.xi([0.4, 0.0, 0.1], q, JOINTS, [0.5, 0.0, 1.0])
    eps = np.zeros(space.size)
    eps[:3] = [0.2, -0.01, -0.3]  # 20 cm, 1 cm, 30 cm
    eps[3:6] = [0.0, 0.0, -1.2]
    cmd = space.command(xi, eps)
    np.testing.assert_allclose(cmd.contact_point, [0.45, -0.01, 0.05])
    expected = rotations.multiply(q, rotations.from_rotvec([0.0, 0.0, -0.3]))
    assert rotations.angle_between(cmd.wrist_orientation, expected) < 1e-9
    assert cmd.clipped == ('contact_x', 'contact_z', 'wrist_rz')
    inside = space.command(xi, np.clip(eps, *space.bounds(xi)))
    assert inside.clipped == () and np.allclose(inside.contact_point, cmd.contact_point)
    assert space.command(xi, np.zeros(space.size)).clipped == ()


@pytest.mark.parametrize('kw,match', [
    (dict(contact_offset_max=-0.1), 'contact_offset_max'),
    (dict(contact_offset_max=float('inf')), 'contact_offset_max'),
    (dict(wrist_residual_max=4.0), r'wrist_residual_max must be within \[0, pi\]'),
    (dict(tau_scale_bounds=(2.0, 1.0)), 'tau_scale_bounds'),
    (dict(hand_upper=[1.0, -2.0, 2.0]), 'lower <= upper'),
])
def test_bad_bounds(kw, match):
    args = dict(hand_joint_names=JOINTS, hand_lower=[0.0, -1.0, 0.0], hand_upper=[1.0, 1.0, 2.0])
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        ParameterSpace(**args)
