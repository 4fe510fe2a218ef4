"""The finger chains of the retargeting YAMLs: forward kinematics and Jacobians."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from deft_hand_driver.kinematics import HandKinematics, KinematicModel, check_fields

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'
# a planar two-joint finger along +x from (0.1, 0, 0), both joints bending about +y
FINGER = {'fingers': {'index': {
    'base': [0.1, 0.0, 0.0],
    'joints': [{'name': 'mcp', 'axis': [0, 2, 0]},          # not unit: normalised
               {'name': 'pip', 'axis': [0, 1, 0], 'origin': [0.05, 0.0, 0.0]}],
    'tip': [0.03, 0.0, 0.0]}}}


def model():
    return KinematicModel(HandKinematics.from_dict(FINGER), ['pip', 'mcp'])


def test_a_planar_finger_bends_as_drawn():
    m = model()
    points, _ = m.forward([0.0, 0.0])  # hand order: pip, mcp
    np.testing.assert_allclose(points[m.keypoint('index_tip')], [0.18, 0.0, 0.0])
    a, b = 0.4, 0.3  # about +y a positive angle turns +x towards -z
    points, _ = m.forward([b, a])
    pip = [0.1 + 0.05 * np.cos(a), 0.0, -0.05 * np.sin(a)]
    tip = np.add(pip, [0.03 * np.cos(a + b), 0.0, -0.03 * np.sin(a + b)])
    np.testing.assert_allclose(points[m.keypoint('pip')], pip, atol=1e-15)
    np.testing.assert_allclose(points[m.keypoint('index_tip')], tip, atol=1e-15)
    np.testing.assert_allclose(points[m.keypoint('palm')], [0.0, 0.0, 0.0])


@pytest.mark.parametrize('path', sorted(CONFIG_DIR.glob('*_retargeting.yaml')),
                         ids=lambda p: p.name)
def test_jacobians_match_finite_differences(path):
    data = yaml.safe_load(path.read_text())
    kin = HandKinematics.from_dict(data['kinematics'])
    m = KinematicModel(kin, kin.joint_names)
    q = np.random.default_rng(1).uniform(-0.5, 0.5, m.size)
    _, jac = m.forward(q, jacobian=True)
    h = 1e-6
    for i in range(m.size):
        dq = np.zeros(m.size)
        dq[i] = h
        numeric = (m.forward(q + dq)[0] - m.forward(q - dq)[0]) / (2 * h)
        np.testing.assert_allclose(jac[:, :, i], numeric, atol=1e-8)


def test_malformed_chains_are_value_errors():
    with pytest.raises(ValueError, match=r"kinematics: unknown field\(s\) \['hands'\]"):
        HandKinematics.from_dict({'fingers': {}, 'hands': 1})
    with pytest.raises(ValueError, match='axis must not be zero'):
        HandKinematics.from_dict({'fingers': {'f': {'base': [0, 0, 0], 'tip': [0, 0, 0],
                                                    'joints': [{'name': 'j', 'axis': [0] * 3}]}}})
    with pytest.raises(ValueError, match=r"not described: \['ring'\], unknown: \['mcp'\]"):
        KinematicModel(HandKinematics.from_dict(FINGER), ['pip', 'ring'])
    with pytest.raises(ValueError, match="unknown robot keypoint 'thumb_tip'"):
        model().keypoint('thumb_tip')
    with pytest.raises(ValueError, match='where: expected a mapping'):
        check_fields([1], 'where', ('a',))
