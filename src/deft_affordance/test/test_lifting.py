import numpy as np
import pytest

from deft_affordance.lifting import crop_to_image, lift_contact

K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]


def test_crop_pixels_map_back_through_the_window():
    # a 224 px crop of the 112 px window at (100, 50): the crop's centre is the window's centre
    centre = crop_to_image((111.5, 111.5), (100, 50, 112), 224)
    np.testing.assert_allclose(centre, [155.5, 105.5])
    np.testing.assert_allclose(crop_to_image((0.5, 0.5), (100, 50, 112), 224), [100.0, 50.0])
    with pytest.raises(ValueError, match='> 0'):
        crop_to_image((1, 1), (0, 0, 0), 224)


def test_contact_lifts_to_the_point_under_the_pixel():
    # a plane of points 0.8 m away; the pixel (420, 240) is 0.16 m right of the optical axis
    xs, ys = np.meshgrid(np.linspace(-0.2, 0.2, 41), np.linspace(-0.1, 0.1, 21))
    pts = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.8)], axis=1)
    point, dist = lift_contact((420.0, 240.0), pts, K)
    np.testing.assert_allclose(point, [0.16, 0.0, 0.8], atol=1e-9)
    assert dist == pytest.approx(0.0, abs=1e-6)
    # a hole in the depth under the pixel: the nearest surface point is taken
    keep = np.hypot(pts[:, 0] - 0.16, pts[:, 1]) > 0.015
    point, dist = lift_contact((420.0, 240.0), pts[keep], K)
    assert np.hypot(point[0] - 0.16, point[1]) == pytest.approx(0.02, abs=1e-9)
    assert dist == pytest.approx(0.02 * 500 / 0.8)


def test_no_valid_points_or_no_intrinsics_are_errors():
    with pytest.raises(ValueError, match='no valid 3D points'):
        lift_contact((0, 0), np.array([[np.nan, 0, 1], [0, 0, -1]]), K)
    with pytest.raises(ValueError, match='focal'):
        lift_contact((0, 0), np.array([[0, 0, 1.0]]), [0.0] * 9)
