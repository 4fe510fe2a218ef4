import math
import re

import numpy as np
import pytest

from deft_perception.geometry import (
    CameraInfoError,
    CameraModel,
    crop_resize,
    crop_window,
    mask_box,
)

CAM = CameraModel(fx=500.0, fy=510.0, cx=320.0, cy=240.0, width=640, height=480)


def test_from_camera_info_reads_the_row_major_k():
    k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    assert CameraModel.from_camera_info(k, 640, 480) == CAM


@pytest.mark.parametrize('k', [[0.0] * 9, [500.0, 0, 320, 0, 510, 240, 0, 0], [1] + [0] * 8])
def test_from_camera_info_rejects_missing_intrinsics(k):
    with pytest.raises(ValueError, match='camera_info (fx = 0.0|fy = 0.0|K has 8 values)'):
        CameraModel.from_camera_info(k, 640, 480)


def test_backprojection_of_a_pixel_is_exact_and_projects_back():
    mask = np.zeros((480, 640), bool)
    depth = np.full((480, 640), np.nan, dtype=np.float32)
    mask[300, 400] = True
    depth[300, 400] = 2.0
    points, valid = CAM.backproject(mask, depth)
    np.testing.assert_allclose(points, [[80 * 2.0 / 500, 60 * 2.0 / 510, 2.0]], rtol=1e-12)
    assert valid == 1.0
    np.testing.assert_allclose(CAM.project(points), [[400.0, 300.0]], rtol=1e-12)


def test_backprojection_drops_invalid_depth_and_reports_the_valid_fraction():
    depth = np.array([[1.0, np.nan, 0.0, -1.0, np.inf]])
    mask = np.ones_like(depth, bool)
    cam = CameraModel(1.0, 1.0, 0.0, 0.0, 5, 1)
    points, valid = cam.backproject(mask, depth)
    np.testing.assert_array_equal(points, [[0.0, 0.0, 1.0]])
    assert valid == pytest.approx(0.2)
    points, valid = cam.backproject(np.zeros_like(mask), depth)
    assert points.shape == (0, 3) and valid == 0.0
    with pytest.raises(ValueError, match=r'mask \(1, 4\) and depth \(1, 5\) differ'):
        cam.backproject(mask[:, :4], depth)


def test_mask_box_has_exclusive_upper_bounds():
    mask = np.zeros((50, 60), bool)
    mask[10:20, 30:45] = True
    mask[25, 5] = True
    assert mask_box(mask) == (5, 10, 45, 26)
    with pytest.raises(ValueError, match='empty mask'):
        mask_box(np.zeros((5, 5), bool))


def test_crop_window_is_a_square_around_the_box_with_its_margin():
    assert crop_window((100, 100, 140, 120), 0.25, 640, 480) == (90, 80, 60)


@pytest.mark.parametrize('box, margin, window', [
    ((0, 0, 20, 10), 0.5, (0, 0, 40)),  # top-left corner
    ((600, 400, 640, 480), 0.15, (536, 376, 104)),  # bottom-right corner
    ((0, 0, 640, 480), 0.15, (80, 0, 480)),  # larger than the image: the image's short side
])
def test_crop_window_is_clamped_to_the_image(box, margin, window):
    assert crop_window(box, margin, 640, 480) == window
    x0, y0, side = window
    assert 0 <= x0 and x0 + side <= 640 and 0 <= y0 and y0 + side <= 480


def test_crop_resize_at_the_same_size_is_the_crop():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = crop_resize(rgb, (10, 5, 32), 32)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb[5:37, 10:42])


def test_crop_resize_halving_averages_pixel_pairs():
    ramp = np.tile(np.arange(0, 160, 10, dtype=np.uint8)[None, :, None], (16, 1, 3))
    out = crop_resize(ramp, (0, 0, 16), 8)
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[0, :, 0], [5, 25, 45, 65, 85, 105, 125, 145])
    np.testing.assert_array_equal(out[:, 3, 1], 65)


def test_crop_resize_upscaling_keeps_a_flat_colour():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[5:15, 5:15] = [200, 100, 50]
    out = crop_resize(rgb, (5, 5, 10), 224)
    assert out.shape == (224, 224, 3)
    assert np.all(out == [200, 100, 50])


@pytest.mark.parametrize('k,size,image,match', [
    ([math.nan, 0, 32, 0, 50, 24, 0, 0, 1], (64, 48), None, 'fx = nan'),
    ([50, 0, 32, 0, math.inf, 24, 0, 0, 1], (64, 48), None, 'fy = inf'),
    ([0, 0, 32, 0, 50, 24, 0, 0, 1], (64, 48), None, 'fx = 0.0'),
    ([50, 0, math.nan, 0, 50, 24, 0, 0, 1], (64, 48), None, 'cx = nan'),
    ([50, 0, 32, 0, 50, -1, 0, 0, 1], (64, 48), None, 'cy = -1.0'),
    ([50, 0, 64, 0, 50, 24, 0, 0, 1], (64, 48), None, 'cx = 64.0'),
    ([50, 0, 32, 0, 50, 24], (64, 48), None, 'has 6 values'),
    ([50, 0, 32, 0, 50, 24, 0, 0, 1], (0, 48), None, 'is empty'),
    ([50, 0, 32, 0, 50, 24, 0, 0, 1], (64, 48), (720, 1280), 'for 64x48 images but the colour '
                                                              'image is 1280x720'),
])
def test_unusable_camera_info_is_refused_with_the_value(k, size, image, match):
    with pytest.raises(CameraInfoError, match=re.escape(match)):
        CameraModel.from_camera_info(k, *size, image)


def test_a_good_camera_info_gives_its_model():
    cam = CameraModel.from_camera_info([50, 0, 32, 0, 40, 24, 0, 0, 1], 64, 48, (48, 64))
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (50, 40, 32, 24, 64, 48)
