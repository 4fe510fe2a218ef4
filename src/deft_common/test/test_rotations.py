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


# --- against independent facts ----------------------------------------------------------------
S = np.sqrt(0.5)
RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # a quarter turn about z


def rodrigues(v):
    """R = I + sin(t) K + (1 - cos(t)) K^2 for a rotation vector v = t k (written out here)."""
    t = np.linalg.norm(v)
    if t == 0:
        return np.eye(3)
    x, y, z = np.asarray(v) / t
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def elementary(axis, a):
    c, s = np.cos(a), np.sin(a)
    return {'x': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            'y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_quaternions_are_x_y_z_w_scalar_last():
    np.testing.assert_allclose(r.from_rotvec([0, 0, np.pi / 2]), [0, 0, S, S], atol=1e-15)
    np.testing.assert_allclose(r.from_rotvec([0, 0, 0]), [0, 0, 0, 1])
    np.testing.assert_allclose(r.to_matrix([0, 0, S, S]), RZ90, atol=1e-15)
    np.testing.assert_allclose(r.to_matrix([1, 0, 0, 0]), np.diag([1, -1, -1]), atol=1e-15)
    np.testing.assert_allclose(r.from_matrix(RZ90), [0, 0, S, S], atol=1e-15)
    np.testing.assert_allclose(r.to_rotvec([0, 0, S, S]), [0, 0, np.pi / 2], atol=1e-15)


def test_hamilton_product_and_conjugate():
    i, j, k, one = np.eye(4)
    np.testing.assert_allclose(r.multiply(i, j), k, atol=1e-15)  # ij = k
    np.testing.assert_allclose(r.multiply(j, i), -k, atol=1e-15)  # ji = -k: the sign is kept
    np.testing.assert_allclose(r.multiply(i, i), -one, atol=1e-15)  # i^2 = -1
    q = r.normalize([0.3, -0.2, 0.5, -0.7])
    np.testing.assert_allclose(r.conjugate(q), [-q[0], -q[1], -q[2], q[3]], atol=1e-15)
    np.testing.assert_allclose(np.abs(r.multiply(q, r.conjugate(q))), one, atol=1e-15)
    np.testing.assert_allclose(r.to_matrix(r.multiply(q, k)), r.to_matrix(q) @ r.to_matrix(k),
                               atol=1e-12)


def test_matrices_match_rodrigues_and_rotate_agrees():
    rng = np.random.default_rng(7)
    for v in rng.normal(0, 1.5, (20, 3)):
        np.testing.assert_allclose(r.rotvec_to_matrix(v), rodrigues(v), atol=1e-12)
        np.testing.assert_allclose(r.to_matrix(r.from_rotvec(v)), rodrigues(v), atol=1e-12)
        p = rng.normal(size=3)
        np.testing.assert_allclose(r.rotate(r.from_rotvec(v), p), rodrigues(v) @ p, atol=1e-12)


def test_rpy_is_urdf_fixed_axes_roll_then_pitch_then_yaw():
    roll, pitch, yaw = 0.3, -0.8, 2.0
    want = elementary('z', yaw) @ elementary('y', pitch) @ elementary('x', roll)
    np.testing.assert_allclose(r.rpy_to_matrix([roll, pitch, yaw]), want, atol=1e-12)
    np.testing.assert_allclose(r.rpy_to_matrix([0, 0, np.pi / 2]), RZ90, atol=1e-15)
    assert r.rpy_to_matrix(np.zeros((5, 3))).shape == (5, 3, 3)


def test_non_unit_and_negative_quaternions_are_normalised():
    np.testing.assert_allclose(r.normalize([0, 0, 0, -2.0]), [0, 0, 0, 1])
    np.testing.assert_allclose(r.normalize([0, 0, -3.0, -3.0]), [0, 0, S, S])
    q = np.array([0.1, -0.4, 0.2, 0.6])
    np.testing.assert_allclose(r.to_matrix(5 * q), r.to_matrix(q), atol=1e-15)
    np.testing.assert_allclose(r.to_matrix(-q), r.to_matrix(q), atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(r.multiply(3 * q, 2 * q)), 1.0)
    t = r.Transform.from_list([0, 0, 0, 0, 0, 2.0, 2.0])  # a quarter turn about z, not unit
    np.testing.assert_allclose(t.apply([1, 0, 0]), [0, 1, 0], atol=1e-15)


def test_rotvecs_come_back_with_angles_up_to_pi():
    v = np.array([0.0, 0.0, 1.5 * np.pi])  # three quarter turns = a quarter turn back
    np.testing.assert_allclose(r.to_rotvec(r.from_rotvec(v)), [0, 0, -np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(r.matrix_to_rotvec(r.rotvec_to_matrix(v)), [0, 0, -np.pi / 2],
                               atol=1e-12)
    half = r.matrix_to_rotvec(np.diag([1.0, -1.0, -1.0]))  # half turn about x: either sign
    np.testing.assert_allclose(np.abs(half), [np.pi, 0, 0], atol=1e-12)


def test_rotvec_round_trip_including_near_pi_and_tiny_angles():
    rng = np.random.default_rng(3)
    for v in list(rng.normal(0, 1.0, (20, 3))) + [np.array([np.pi - 1e-8, 0, 0]),
                                                   np.array([0, 0, 1e-14])]:
        m = r.rotvec_to_matrix(v)
        assert np.allclose(m @ m.T, np.eye(3)) and np.linalg.det(m) == pytest.approx(1.0)
        np.testing.assert_allclose(r.rotvec_to_matrix(r.matrix_to_rotvec(m)), m, atol=1e-9)
    np.testing.assert_allclose(r.from_rotvec([0, 0, 1e-14]), [0, 0, 5e-15, 1], atol=1e-20)


def test_batches_keep_their_shape():
    rng = np.random.default_rng(5)
    v = rng.normal(0, 1.0, (2, 5, 3))
    q = r.from_rotvec(v)
    assert q.shape == (2, 5, 4)
    m = r.to_matrix(q)
    assert m.shape == (2, 5, 3, 3)
    np.testing.assert_allclose(m, r.rotvec_to_matrix(v), atol=1e-12)
    np.testing.assert_allclose(r.to_rotvec(q), v * 1.0, atol=1e-12)  # |v| < pi here
    np.testing.assert_allclose(r.matrix_to_rotvec(m), v, atol=1e-9)
    np.testing.assert_allclose(r.from_matrix(m), r.normalize(q), atol=1e-12)
    assert np.all(r.normalize(-q)[..., 3] >= 0)
    p = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(r.rotate(q, p), np.einsum('abij,abj->abi', m, p), atol=1e-12)
    one = r.from_rotvec([0.1, 0.2, 0.3])  # one rotation, many vectors
    np.testing.assert_allclose(r.rotate(one, p), p @ r.to_matrix(one).T, atol=1e-12)
    flat = q.reshape(10, 4)
    angles = r.angle_between(flat, flat[::-1])
    assert angles.shape == (10,)
    assert angles[0] == pytest.approx(r.angle_between(flat[0], flat[-1]))


def test_angle_between_ignores_sign_and_is_accurate_for_small_angles():
    q = r.from_rotvec([0.2, -0.1, 0.4])
    assert r.angle_between(q, -q) == pytest.approx(0.0, abs=1e-12)
    assert r.angle_between(q, r.turned(q, [0, 1e-7, 0])) == pytest.approx(1e-7, rel=1e-6)
    assert r.angle_between([0, 0, 0, 1], [1, 0, 0, 0]) == pytest.approx(np.pi)
    assert isinstance(r.angle_between(q, q), float)


def test_slerp_ends_and_takes_the_short_arc():
    a = r.from_rotvec([0.0, 0.0, 0.2])
    b = r.from_rotvec([0.0, 0.0, 1.0])
    np.testing.assert_allclose(r.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(r.slerp(a, b, 1.0), b, atol=1e-12)
    np.testing.assert_allclose(r.slerp(a, -b, 0.25), r.from_rotvec([0, 0, 0.4]), atol=1e-12)
    # a small step is still a rotation at constant speed about the same axis
    c = r.from_rotvec([0.0, 0.0, 0.21])
    np.testing.assert_allclose(r.to_rotvec(r.slerp(a, c, 0.3)), [0, 0, 0.203], atol=1e-12)
    # the long way round is never taken: 350 degrees apart is 10 degrees apart
    d = r.from_rotvec([0.0, 0.0, np.radians(350.0)])
    mid = r.slerp([0, 0, 0, 1], d, 0.5)
    assert r.angle_between(mid, [0, 0, 0, 1]) == pytest.approx(np.radians(5.0))


def test_turned_is_about_base_axes_and_compose_applies_the_last_first():
    palm_down = r.from_rotvec([np.pi, 0.0, 0.0])
    q = r.turned(palm_down, [0.0, 0.0, np.pi / 2])  # base z: the fingers swing to +y
    np.testing.assert_allclose(r.rotate(q, [1, 0, 0]), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(r.rotate(q, [0, 0, 1]), [0, 0, -1], atol=1e-12)
    assert q[3] >= 0
    qz = r.from_rotvec([0.0, 0.0, np.pi / 2])
    c = r.compose(qz, palm_down)  # palm down first, then a quarter turn about z
    assert r.angle_between(c, q) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(r.compose(), [0, 0, 0, 1])


def test_malformed_input_is_a_value_error():
    for bad in ([np.nan, 0, 0, 1], [np.inf, 0, 0, 1], [1e-12, 0, 0, 0], [[0, 0, 0, 1], [0] * 4]):
        with pytest.raises(ValueError, match='not a valid quaternion'):
            r.to_matrix(bad)
    with pytest.raises(ValueError, match='4 values'):
        r.normalize([0, 0, 1])
    with pytest.raises(ValueError, match='rotation vector needs 3 values'):
        r.from_rotvec([0, 0, 0, 1])
    with pytest.raises(ValueError, match='not finite'):
        r.rotvec_to_matrix([np.nan, 0, 0])
    with pytest.raises(ValueError, match='3x3'):
        r.from_matrix(np.eye(4))
    with pytest.raises(ValueError):  # a reflection is no rotation
        r.from_matrix(np.diag([1.0, 1.0, -1.0]))
