import numpy as np
import pytest

from deft_affordance.heuristic_prior import heuristic_prior
from deft_common import rotations


def box_points(lo, hi, n=2000, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, 3))


def test_contact_is_the_bounding_box_centre_and_the_palm_faces_down():
    pts = box_points([0.4, -0.1, 0.0], [0.5, 0.0, 0.2])
    pts[0] = [np.nan, 0, 0]
    g = heuristic_prior(pts, ['a', 'b'], np.array([0.3, 0.4]), np.random.default_rng(1))
    np.testing.assert_allclose(g.contact_point, [0.45, -0.05, 0.1], atol=2e-3)
    np.testing.assert_allclose(rotations.rotate(g.wrist_orientation, [0, 0, 1]), [0, 0, -1],
                               atol=1e-12)
    assert g.hand_joint_positions.tolist() == [0.3, 0.4]


def test_wrist_yaw_is_random_but_seeded():
    pts = box_points([0, 0, 0], [1, 1, 1], n=10)
    yaws = [heuristic_prior(pts, [], [], np.random.default_rng(s)).yaw for s in range(200)]
    assert min(yaws) < -2.5 and max(yaws) > 2.5  # spread over the whole circle
    a = heuristic_prior(pts, [], [], np.random.default_rng(3))
    b = heuristic_prior(pts, [], [], np.random.default_rng(3))
    np.testing.assert_array_equal(a.wrist_orientation, b.wrist_orientation)
    x_axis = rotations.rotate(a.wrist_orientation, [1, 0, 0])
    assert np.arctan2(x_axis[1], x_axis[0]) == pytest.approx(a.yaw)


def test_no_points_is_an_error():
    with pytest.raises(ValueError, match='no valid 3D points'):
        heuristic_prior(np.full((4, 3), np.nan), [], [], np.random.default_rng(0))
