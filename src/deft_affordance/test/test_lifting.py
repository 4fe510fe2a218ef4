from types import SimpleNamespace

import numpy as np
import pytest

from deft_affordance.lifting import crop_to_image, lift_contact, model_grasp
from deft_common.rotations import Transform

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


class _Retargeter:
    """Retargets every pose to its joint index (a stand-in with the retargeter's interface)."""

    def __init__(self, names):
        self.hand = SimpleNamespace(joint_names=names)
        self.resets = 0

    def reset(self):
        self.resets += 1

    def retarget(self, pose, global_orient):
        return np.arange(len(self.hand.joint_names), dtype=float)


def test_model_grasp_lifts_turns_and_retargets_by_name():
    # camera 0.8 m above a plane of points, looking down (optical z = base -z)
    xs, ys = np.meshgrid(np.linspace(-0.2, 0.2, 41), np.linspace(-0.1, 0.1, 21))
    pts = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.8)], axis=1)
    camera_to_base = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
    # the crop (224 px) of the window (370, 190, 100): crop pixel 111.5 is image pixel 419.5
    pred = SimpleNamespace(contact_points=np.array([[111.5, 111.5], [111.5, 111.5]]),
                           mean_contact=np.array([111.5, 111.5]),
                           wrist_quaternion=np.array([0.0, 0.0, 0.0, 1.0]),
                           hand_pose=np.zeros(45))
    retargeter = _Retargeter(['b', 'a'])
    g = model_grasp(pred, 224, (370, 190, 100), pts, K, camera_to_base, retargeter, ['a', 'b'],
                    25.0)
    np.testing.assert_allclose(g.contact_point, [0.5 + 0.16, 0.0, 0.1], atol=1e-3)
    np.testing.assert_allclose(g.wrist_orientation, [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(g.hand_joint_positions, [1.0, 0.0])  # by name, not order
    assert g.hand_joint_names == ['a', 'b'] and retargeter.resets == 1
    np.testing.assert_allclose(g.pixels, [419.5, 239.5, 419.5, 239.5])
    with pytest.raises(ValueError, match='px from the object'):
        model_grasp(pred, 224, (0, 0, 10), pts, K, camera_to_base, retargeter, ['a', 'b'], 25.0)
