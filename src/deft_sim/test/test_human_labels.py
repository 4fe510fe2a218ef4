"""The shared human-hand helpers: named MANO poses and crops of rendered images."""

import numpy as np
import pytest

from deft_sim.human_labels import MANO_ANATOMICAL, crop_box, cut, load_hand, mano_pose, to_crop


def test_mano_poses_are_45_values_and_closed_is_flexed():
    for name in MANO_ANATOMICAL:
        assert mano_pose(name).shape == (45,)
    assert not np.any(mano_pose('open'))
    assert np.abs(mano_pose('closed')).sum() > np.abs(mano_pose('half')).sum() > 0
    with pytest.raises(ValueError, match='unknown hand pose'):
        mano_pose('fist bump')


def test_a_crop_is_square_about_the_points_and_maps_them_back():
    points = np.array([[10.0, 20.0], [30.0, 60.0]])
    u0, v0, side = crop_box(points, 0.25)
    assert side == pytest.approx(40.0 * 1.5 + 1.0)  # the longer side grown by 25 % each way
    assert (u0 + side / 2, v0 + side / 2) == pytest.approx((20.0, 40.0))  # centred
    image = np.zeros((100, 120, 3), np.uint8)
    image[60, 30] = (255, 0, 0)  # a marked pixel at one of the points
    crop = cut(image, (u0, v0, side), 61)  # one crop pixel per image pixel
    u, v = np.round(to_crop(points[1:], (u0, v0, side), 61)[0]).astype(int)
    assert tuple(crop[v, u]) == (255, 0, 0)
    # outside the image the edge pixels repeat: a crop of the corner stays the image's size
    assert cut(image, (-50.0, -50.0, 40.0), 8).shape == (8, 8, 3)


def test_the_installed_hand_config_loads():
    hand = load_hand()
    assert len(hand.joint_names) == 16
