import numpy as np
import pytest

from deft_common import rotations as r


def test_rotvec_round_trip_and_matrix_agree():
    rng = np.random.default_rng(3)
    for _ in range(50):
        v = rng.normal(size=3)
        v *= min(1.0, 3.0 / np.linalg.norm(v))  # angle below pi
        q = r.from_rotvec(v)
        np.testing.assert_allclose(r.to_rotvec(q), v, atol=1e-9)
        np.testing.assert_allclose(r.from_matrix(r.to_matrix(q)), r.normalize(q), atol=1e-9)


def test_rotate_quarter_turn_about_z():
    q = r.from_rotvec([0, 0, np.pi / 2])
    np.testing.assert_allclose(r.rotate(q, [1, 0, 0]), [0, 1, 0], atol=1e-12)


def test_multiply_applies_right_then_left():
    qx = r.from_rotvec([np.pi / 2, 0, 0])
    qz = r.from_rotvec([0, 0, np.pi / 2])
    # rotate y by qz first (-> -x), then by qx (-x stays -x)
    np.testing.assert_allclose(r.rotate(r.multiply(qx, qz), [0, 1, 0]), [-1, 0, 0], atol=1e-12)


def test_slerp_halfway_and_angle_between():
    a = r.from_rotvec([0, 0, 0])
    b = r.from_rotvec([0, 0, 1.0])
    mid = r.slerp(a, b, 0.5)
    assert r.angle_between(a, mid) == pytest.approx(0.5)
    assert r.angle_between(mid, b) == pytest.approx(0.5)


def test_top_down_transform_maps_optical_axis_down():
    t = r.Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
    # a point 0.9 m along the optical axis lies on the table under the camera
    np.testing.assert_allclose(t.apply([0, 0, 0.9]), [0.5, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(t.apply([0.1, 0.2, 0.9]), [0.6, -0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(t.inverse().apply(t.apply([0.3, -0.1, 0.7])), [0.3, -0.1, 0.7])


def test_bad_quaternion_and_transform_raise():
    with pytest.raises(ValueError):
        r.normalize([0, 0, 0, 0])
    with pytest.raises(ValueError, match='7 values'):
        r.Transform.from_list([1, 2, 3])
