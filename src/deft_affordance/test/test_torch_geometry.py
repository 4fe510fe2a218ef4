"""The torch copies of the rotation conversions agree with deft_common.rotations and train."""

import numpy as np
import torch

from deft_affordance.torch_geometry import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
    spatial_softmax,
)
from deft_common import rotations


def test_spatial_softmax_gives_the_argmax_cell_of_a_peaked_heatmap():
    logits = torch.full((2, 3, 8, 12), -50.0)
    peaks = [(1, 2), (7, 11), (4, 0), (0, 5), (3, 3), (6, 9)]   # (row, col)
    for k, (i, j) in enumerate(peaks):
        logits.view(6, 8, 12)[k, i, j] = 50.0
    probs, xy = spatial_softmax(logits)
    assert torch.allclose(probs.sum((-1, -2)), torch.ones(2, 3))
    want = torch.tensor([[(j + 0.5) / 12, (i + 0.5) / 8] for i, j in peaks]).view(2, 3, 2)
    assert torch.allclose(xy, want, atol=1e-6)


def test_6d_rotation_round_trip():
    q = torch.nn.functional.normalize(torch.randn(64, 4, generator=torch.Generator()
                                                  .manual_seed(1)), dim=-1)
    rot = torch.as_tensor(rotations.to_matrix(q.double().numpy()), dtype=torch.float32)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(rot)), rot, atol=1e-5)
    # any 6 numbers (not degenerate) give a proper rotation
    r = rot6d_to_matrix(torch.randn(64, 6))
    assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64), atol=1e-5)
    for qi, ri in zip(q.double().numpy(), rot.double().numpy()):   # matrix -> quaternion
        back = rotations.from_matrix(ri)
        assert back[3] >= 0 and abs(abs(np.dot(back, qi)) - 1.0) < 1e-5


def test_axis_angle_and_geodesic_angle_match_the_numpy_module():
    v = np.random.default_rng(2).normal(0, 1.2, (4, 15, 3))
    rot = axis_angle_to_matrix(torch.as_tensor(v))
    np.testing.assert_allclose(rot.numpy(), rotations.rotvec_to_matrix(v), atol=1e-12)
    q = rotations.from_rotvec(v)
    want = rotations.angle_between(q[:, :1], q)
    got = geodesic_angle(rot[:, :1], rot).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(axis_angle_to_matrix(torch.zeros(3)).numpy(), np.eye(3))


def test_the_torch_conversions_are_differentiable():
    d6 = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    v = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    loss = geodesic_angle(rot6d_to_matrix(d6), axis_angle_to_matrix(v)).sum()
    loss.backward()
    assert torch.all(torch.isfinite(d6.grad)) and d6.grad.abs().sum() > 0
    assert torch.all(torch.isfinite(v.grad)) and v.grad.abs().sum() > 0
