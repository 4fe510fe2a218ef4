import numpy as np
import pytest

from deft_affordance.heuristic_prior import heuristic_prior, random_wrist
from deft_common import rotations


def box_points(lo, hi, n=2000, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, 3))


def test_contact_is_the_bounding_box_centre_and_the_hand_half_closed():
    pts = box_points([0.4, -0.1, 0.0], [0.5, 0.0, 0.2])
    pts[0] = [np.nan, 0, 0]
    g = heuristic_prior(pts, ['a', 'b'], np.array([0.3, 0.4]), np.random.default_rng(1))
    np.testing.assert_allclose(g.contact_point, [0.45, -0.05, 0.1], atol=2e-3)
    assert g.hand_joint_positions.tolist() == [0.3, 0.4]
    np.testing.assert_allclose(rotations.rotate(g.wrist_orientation, [0, 0, 1]), g.approach,
                               atol=1e-12)


def test_the_wrist_is_random_downward_or_sideways_and_seeded():
    draws = [random_wrist(np.random.default_rng(s)) for s in range(2000)]
    approach = np.array([a for _, a, _ in draws])
    np.testing.assert_allclose(np.linalg.norm(approach, axis=1), 1.0, atol=1e-12)
    assert approach[:, 2].max() <= 1e-12  # never palm up
    # uniform over the lower hemisphere: -z's cosine is uniform in [0, 1]
    assert np.mean(-approach[:, 2] < 0.2) == pytest.approx(0.2, abs=0.04)  # near horizontal
    assert np.mean(-approach[:, 2] > 0.9) == pytest.approx(0.1, abs=0.03)  # near top-down
    headings = np.arctan2(approach[:, 1], approach[:, 0])
    assert np.histogram(headings, bins=4, range=(-np.pi, np.pi))[0].min() > 400
    rolls = np.array([r for _, _, r in draws])
    assert rolls.min() < -3.0 and rolls.max() > 3.0
    pts = box_points([0, 0, 0], [1, 1, 1], n=10)
    a = heuristic_prior(pts, [], [], np.random.default_rng(3))
    b = heuristic_prior(pts, [], [], np.random.default_rng(3))
    np.testing.assert_array_equal(a.wrist_orientation, b.wrist_orientation)


def test_a_zero_tilt_is_top_down_turned_by_the_roll():
    class Fixed:  # tilt 0 (cosine 1), heading 0, roll pi/2
        def __init__(self):
            self.values = iter([1.0, 0.0, np.pi / 2])

        def uniform(self, *_):
            return next(self.values)

    q, approach, roll = random_wrist(Fixed())
    np.testing.assert_allclose(approach, [0, 0, -1], atol=1e-12)
    x_axis = rotations.rotate(q, [1, 0, 0])
    assert np.arctan2(x_axis[1], x_axis[0]) == pytest.approx(roll)


def test_no_points_is_an_error():
    with pytest.raises(ValueError, match='no valid 3D points'):
        heuristic_prior(np.full((4, 3), np.nan), [], [], np.random.default_rng(0))
