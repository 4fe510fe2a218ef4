import numpy as np
import pytest

from deft_affordance.geometric_prior import geometric_prior
from deft_common import rotations

LO, HI = np.array([0.40, -0.03, 0.0]), np.array([0.46, 0.03, 0.10])  # a 6 x 6 x 10 cm box


def box_surface(step=0.005):
    """Points on the top face and the four sides of the box, as a depth camera might see them."""
    xs = np.arange(LO[0], HI[0] + 1e-9, step)
    ys = np.arange(LO[1], HI[1] + 1e-9, step)
    zs = np.arange(LO[2], HI[2] + 1e-9, step)
    top = np.array([[x, y, HI[2]] for x in xs for y in ys])
    sides = [[x, y, z] for z in zs[:-1] for x in xs for y in (LO[1], HI[1])]
    sides += [[x, y, z] for z in zs[:-1] for y in ys for x in (LO[0], HI[0])]
    return np.vstack([top, sides])


def test_contact_is_the_centroid_of_the_top_surface():
    g = geometric_prior(box_surface(), ['j0', 'j1'], np.array([0.1, 0.2]))
    # the top face plus the symmetric upper 2 cm of the sides: centred on the top, just below it
    np.testing.assert_allclose(g.contact_point[:2], [0.43, 0.0], atol=1e-9)
    assert HI[2] - 0.01 < g.contact_point[2] < HI[2]
    only_top = geometric_prior(box_surface(), [], [], top_band=0.001)
    np.testing.assert_allclose(only_top.contact_point, [0.43, 0.0, 0.10], atol=1e-9)


def test_top_band_decides_which_points_count_as_top():
    pts = np.array([[0.0, 0.0, 0.10], [0.2, 0.0, 0.10], [1.0, 1.0, 0.085], [5.0, 5.0, 0.0]])
    np.testing.assert_allclose(geometric_prior(pts, [], [], top_band=0.01).contact_point,
                               [0.1, 0.0, 0.10])
    np.testing.assert_allclose(geometric_prior(pts, [], [], top_band=0.02).contact_point,
                               [0.4, 1.0 / 3.0, 0.095])


def test_non_finite_points_are_ignored():
    pts = box_surface()
    noisy = np.vstack([pts, [[np.nan, 0.0, 1.0], [0.4, np.inf, 0.5], [0.4, 0.0, -np.inf]]])
    np.testing.assert_allclose(geometric_prior(noisy, [], []).contact_point,
                               geometric_prior(pts, [], []).contact_point)
    flat = geometric_prior(pts.ravel(), [], []).contact_point  # N*3 flat list, as in a message
    np.testing.assert_allclose(flat, geometric_prior(pts, [], []).contact_point)


def test_the_wrist_is_top_down_with_the_palm_facing_the_table():
    q = geometric_prior(box_surface(), [], []).wrist_orientation
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
    np.testing.assert_allclose(rotations.rotate(q, [0, 0, 1]), [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(rotations.rotate(q, [1, 0, 0]), [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize('yaw', [np.pi / 2, -2.0, 3.0])
def test_wrist_yaw_turns_the_hand_about_the_vertical(yaw):
    q = geometric_prior(box_surface(), [], [], wrist_yaw=yaw).wrist_orientation
    np.testing.assert_allclose(rotations.rotate(q, [0, 0, 1]), [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(rotations.rotate(q, [1, 0, 0]), [np.cos(yaw), np.sin(yaw), 0],
                               atol=1e-12)


def test_hand_pose_and_joint_names_are_copied():
    names, pose = ['a', 'b', 'c'], np.array([0.1, 0.2, 0.3])
    g = geometric_prior(box_surface(), names, pose)
    names.append('d')
    pose[0] = 9.0
    assert g.hand_joint_names == ['a', 'b', 'c']
    assert g.hand_joint_positions.tolist() == [0.1, 0.2, 0.3]


@pytest.mark.parametrize('points', [np.zeros((0, 3)), [], np.full((5, 3), np.nan),
                                    [[0.1, np.nan, 0.2]]])
def test_no_valid_points_is_an_error(points):
    with pytest.raises(ValueError, match='the object has no valid 3D points'):
        geometric_prior(points, ['a'], [0.0])
