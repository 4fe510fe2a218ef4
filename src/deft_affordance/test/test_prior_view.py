import numpy as np
import pytest

from deft_affordance.prior_view import CONTACT, WRIST, draw_prior_view, project
from deft_common import rotations
from deft_common.rotations import Transform

CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])  # looking down
K = [100.0, 0.0, 79.5, 0.0, 100.0, 59.5, 0.0, 0.0, 1.0]


def test_projection_of_base_points():
    uv = project(np.array([[0.5, 0.0, 0.0], [0.59, 0.0, 0.0], [0.5, 0.0, 2.0]]),
                 CAMERA_TO_BASE, K)
    np.testing.assert_allclose(uv[0], [79.5, 59.5])  # below the camera: the image centre
    np.testing.assert_allclose(uv[1], [89.5, 59.5])  # 9 cm along +x, 0.9 m away: 10 px right
    assert np.isnan(uv[2]).all()  # above the camera: not in the image


def test_mask_contact_and_approach_are_drawn():
    rgb = np.full((120, 160, 3), 100, np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:80, 60:100] = 255
    side = rotations.from_rotvec([0.0, np.pi / 2, 0.0])  # approach (+z) along base +x
    out = draw_prior_view(rgb, mask, [80.0, 60.0], [0.5, 0.0, 0.0], side, CAMERA_TO_BASE, K)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and (rgb == 100).all()  # a copy
    assert out[45, 65, 2] > out[45, 65, 0] + 60 and (out[10, 10] == 100).all()  # tinted mask
    near = out[50:71, 70:91].reshape(-1, 3)
    assert (near == CONTACT).all(axis=1).any()  # the ring about (80, 60)
    assert (out == WRIST).all(axis=2).sum() > 10  # the approach arrow
    with pytest.raises(ValueError, match='mask'):
        draw_prior_view(rgb, mask[:10], [80.0, 60.0], [0.5, 0.0, 0.0], side, CAMERA_TO_BASE, K)
