"""
Differentiable geometry of the affordance network's outputs, in torch (training losses need it).

These are the stack's only torch copies of rotation conversions: numpy code uses
deft_common.rotations (scipy's Rotation). Rotations are (..., 3, 3) matrices whose columns are the
rotated axes; axis-angle vectors are axis * angle (radians).
"""

from typing import Tuple

import torch
from torch.nn import functional as F  # noqa: N812


def spatial_softmax(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Return (probabilities, expected points) of (..., H, W) heatmap logits.

    The points are (..., 2) as (x, y) in [0, 1], cell (i, j) counting at ((j + 0.5) / W,
    (i + 0.5) / H): for a sharply peaked heatmap this is the centre of its argmax cell.
    """
    h, w = logits.shape[-2:]
    probs = torch.softmax(logits.flatten(-2), dim=-1).view(logits.shape)
    xs = (torch.arange(w, dtype=probs.dtype, device=probs.device) + 0.5) / w
    ys = (torch.arange(h, dtype=probs.dtype, device=probs.device) + 0.5) / h
    x = (probs.sum(-2) * xs).sum(-1)
    y = (probs.sum(-1) * ys).sum(-1)
    return probs, torch.stack([x, y], dim=-1)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Map (..., 6) values (two 3-vectors a1, a2) to (..., 3, 3) rotations by Gram-Schmidt."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)  # b1, b2, b3 are the columns


def matrix_to_rot6d(rot: torch.Tensor) -> torch.Tensor:
    """Return the 6D representation (first two columns) of (..., 3, 3) rotation matrices."""
    return torch.cat([rot[..., :, 0], rot[..., :, 1]], dim=-1)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Return the angle (radians, in [0, pi]) of r1^T r2 for (..., 3, 3) rotations."""
    cos = ((r1.transpose(-1, -2) @ r2).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.acos(cos.clamp(-1.0, 1.0))


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Return (..., 3, 3) rotations of (..., 3) axis-angle vectors (Rodrigues)."""
    angle = v.norm(dim=-1, keepdim=True)
    axis = v / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(v.shape[:-1] + (3, 3))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + s * k + (1 - c) * (k @ k)

