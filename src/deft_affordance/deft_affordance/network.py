"""
The DEFT affordance network f(object crop, task text embedding), its config and input format.

`AffordanceNet`, as in the paper:

    crop (S x S RGB) -> ResNet trunk (conv1..layer4) -> C x S/32 x S/32 feature map
        -> deconvolutions (3 x ConvTranspose2d stride 2, BN, ReLU) -> 1x1 conv
        -> K contact heatmaps (S/4 x S/4) -> spatial softmax -> K contact points
    task text -> CLIP text tower (deft_affordance.text_encoder, frozen) -> text embedding
    [rotation query, pose query, text token, pooled visual token, S/32 x S/32 visual tokens]
        -> transformer encoder -> rotation query -> 6D rotation -> wrist rotation matrix
                               -> pose query -> MANO hand pose (45 axis-angle values)

Coordinates. A contact point is (u, v) in pixels of the crop as given: u the column, v the row,
integer values at pixel centres (pixel (0, 0) covers [-0.5, 0.5]^2). Inside the network points are
normalised, x = (u + 0.5) / width in [0, 1] (same for v with the height), so the heatmap cell j of
w cells has its centre at x = (j + 0.5) / w. A crop that is not square is resized to a square, and
the points are mapped back per axis.

The wrist rotation uses the continuous 6D representation of Zhou et al. (CVPR 2019): the first two
columns of the rotation matrix, made orthonormal by Gram-Schmidt
(`deft_affordance.torch_geometry.rot6d_to_matrix`). Its frame is the dataset's (see
`deft_affordance.dataset`): the MANO wrist frame expressed in the camera optical frame.

The ResNet loads from paths only (nothing is downloaded): `resnet18` and `r3m` through
`deft_affordance.encoders.build_encoder`, `resnet50` from a torchvision state dict. With no path it
is randomly initialised (seeded) only when `allow_random` is set (tests, dry runs); otherwise a
ValueError says which path is missing.
"""

from dataclasses import asdict, dataclass, field, fields
import json
import math
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from deft_affordance.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_encoder,
    build_trunk,
    load_weights_file,
)
from deft_affordance.torch_geometry import rot6d_to_matrix, spatial_softmax
from deft_common.checkpoint import first_line

BACKBONES = ('resnet18', 'resnet50', 'r3m')
HAND_POSE_DIM = 45
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


# --- input ----------------------------------------------------------------------------------
def check_crop(rgb: np.ndarray, what: str = 'crop') -> np.ndarray:
    """Return `rgb` if it is an (H, W, 3) uint8 array with H, W >= 2, else raise ValueError."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 2:
        shape = getattr(rgb, 'shape', None)
        raise ValueError(f'{what} must be an H x W x 3 uint8 RGB array (H, W >= 2), got '
                         f'{type(rgb).__name__} {getattr(rgb, "dtype", "")} {shape}')
    return rgb


def crop_to_tensor(rgb: np.ndarray, size: int) -> torch.Tensor:
    """
    Return a (3, size, size) ImageNet-normalised tensor of an (H, W, 3) uint8 RGB crop.

    The crop is resized to a square, never cropped (a centre crop, as in
    `deft_affordance.encoders.preprocess`, would cut contact points off the border).
    """
    rgb = check_crop(rgb)
    x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float().div_(255.0)
    if x.shape[1:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode='bilinear', align_corners=False,
                          antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


# --- the network ----------------------------------------------------------------------------
@dataclass
class AffordanceConfig:
    """Everything that fixes the network; stored as JSON in the checkpoint."""

    backbone: str = 'resnet18'
    backbone_weights: str = ''       # path used at training time (informational after that)
    trunk_arch: str = 'resnet18'     # torchvision architecture of the trunk (r3m: 18/34/50)
    image_size: int = 224
    num_contacts: int = 5
    deconv_channels: int = 256
    d_model: int = 256
    heads: int = 4
    layers: int = 2
    freeze_backbone: bool = False    # train the heads only (trunk frozen, BN statistics kept)
    clip_model: str = 'ViT-B-32'
    clip_config: Dict = field(default_factory=dict)
    clip_weights: str = ''
    text_dim: int = 512
    text_probe: List[float] = field(default_factory=list)
    contact_weight: float = 1.0
    rotation_weight: float = 1.0
    hand_pose_weight: float = 1.0
    init_seed: int = 0
    info: Dict = field(default_factory=dict)   # free-form: training data, epochs, metrics

    def __post_init__(self):
        """Check the values; ValueError naming the bad one."""
        if self.backbone not in BACKBONES:
            raise ValueError(f'backbone {self.backbone!r} is not one of {", ".join(BACKBONES)}')
        if self.trunk_arch not in ('resnet18', 'resnet34', 'resnet50'):
            raise ValueError(f'trunk_arch {self.trunk_arch!r} is not resnet18/34/50')
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f'image_size must be a multiple of 32, >= 32; got {self.image_size}')
        for name in ('num_contacts', 'deconv_channels', 'd_model', 'heads', 'layers', 'text_dim'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.d_model % self.heads:
            raise ValueError(f'd_model {self.d_model} must be a multiple of heads {self.heads}')
        for name in ('contact_weight', 'rotation_weight', 'hand_pose_weight'):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f'{name} must be a finite number >= 0, got {v!r}')

    @property
    def heatmap_size(self) -> int:
        """Return the side of the contact heatmaps (image_size / 4)."""
        return self.image_size // 4

    def to_json(self) -> str:
        """Return the config as JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'AffordanceConfig':
        """Read a config written by `to_json`; ValueError if it is not one."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f'config is not JSON: {exc}') from exc
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - names:
            raise ValueError(f'config has unknown keys {sorted(set(data) - names)}'
                             if isinstance(data, dict) else 'config is not an object')
        return cls(**data)


def _trunk_channels(trunk: nn.Module) -> int:
    return [m for m in trunk.layer4.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def _resnet50_trunk(weights: str, allow_random: bool) -> nn.Module:
    if not weights:
        if not allow_random:
            raise ValueError('no weights for the resnet50 backbone: give the path of a '
                             'torchvision ResNet-50 state_dict (.pt/.pth); nothing can be '
                             'downloaded here (random weights only with allow_random)')
        return build_trunk('resnet50')
    state = load_weights_file(weights)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f'weights file {weights!r} is not a state dict (names -> tensors)')
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()
             if k not in ('fc.weight', 'fc.bias')}
    trunk = build_trunk('resnet50')
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f'weights file {weights!r} is not a torchvision ResNet-50 state dict: '
                         f'{first_line(exc)}') from exc
    return trunk


def build_backbone(backbone: str, weights: str = '',
                   allow_random: bool = False) -> Tuple[nn.Module, str]:
    """Return (ResNet trunk with fc = Identity, its torchvision arch) for a backbone choice."""
    if backbone not in BACKBONES:
        raise ValueError(f'backbone {backbone!r} is not one of {", ".join(BACKBONES)}')
    if backbone == 'resnet50':
        return _resnet50_trunk(weights, allow_random), 'resnet50'
    if backbone == 'r3m' and not weights and allow_random:
        return build_trunk('resnet50'), 'resnet50'   # the released R3M size of the paper
    trunk = build_encoder(backbone, weights, allow_random)
    channels = _trunk_channels(trunk)
    arch = 'resnet50' if channels == 2048 else (
        'resnet34' if len(trunk.layer3) == 6 else 'resnet18')
    return trunk, arch


class AffordanceNet(nn.Module):
    """Crop + text embedding -> contact heatmaps, 6D wrist rotation, MANO pose (see module)."""

    def __init__(self, cfg: AffordanceConfig, trunk: nn.Module):
        """Assemble the heads around a ResNet `trunk` (fc unused)."""
        super().__init__()
        self.trunk = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool,
                                   trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
        self.freeze_backbone = bool(cfg.freeze_backbone)
        if self.freeze_backbone:
            self.trunk.requires_grad_(False)
        c, ch, d = _trunk_channels(trunk), cfg.deconv_channels, cfg.d_model
        deconv = []
        for k in range(3):
            deconv += [nn.ConvTranspose2d(c if k == 0 else ch, ch, 4, stride=2, padding=1,
                                          bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.deconv = nn.Sequential(*deconv)
        self.heatmap = nn.Conv2d(ch, cfg.num_contacts, 1)
        cells = (cfg.image_size // 32) ** 2
        self.visual_proj = nn.Linear(c, d)
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.queries = nn.Parameter(torch.randn(2, d) * 0.02)      # rotation, hand pose
        self.type_embed = nn.Parameter(torch.randn(3, d) * 0.02)   # text, global, spatial
        self.pos_embed = nn.Parameter(torch.randn(cells, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=2 * d, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.rot_head = nn.Linear(d, 6)
        self.pose_head = nn.Linear(d, HAND_POSE_DIM)
        with torch.no_grad():  # start at the identity rotation and the flat hand
            self.rot_head.weight.mul_(0.1)
            self.rot_head.bias.copy_(torch.tensor(IDENTITY_6D))
            self.pose_head.weight.mul_(0.1)
            self.pose_head.bias.zero_()

    def train(self, mode: bool = True) -> 'AffordanceNet':
        """Set the training mode; a frozen trunk stays in evaluation mode."""
        super().train(mode)
        if self.freeze_backbone:
            self.trunk.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the trunk's (B, C, S/32, S/32) feature map of (B, 3, S, S) normalised crops."""
        if self.freeze_backbone:
            with torch.no_grad():
                return self.trunk(images)
        return self.trunk(images)

    def heads(self, feat: torch.Tensor, text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Run everything after the trunk: see `forward`."""
        logits = self.heatmap(self.deconv(feat))
        heatmaps, points = spatial_softmax(logits)
        spatial = self.visual_proj(feat.flatten(2).transpose(1, 2))  # B, hw, d
        b = feat.shape[0]
        tokens = torch.cat([
            self.queries.expand(b, -1, -1),
            (self.text_proj(text) + self.type_embed[0])[:, None],
            (spatial.mean(1) + self.type_embed[1])[:, None],
            spatial + self.type_embed[2] + self.pos_embed[:spatial.shape[1]],
        ], dim=1)
        out = self.norm(self.encoder(tokens))
        rot6d = self.rot_head(out[:, 0])
        return {'logits': logits, 'heatmaps': heatmaps, 'points': points, 'rot6d': rot6d,
                'rotation': rot6d_to_matrix(rot6d), 'hand_pose': self.pose_head(out[:, 1])}

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Run the network on (B, 3, S, S) normalised crops and (B, text_dim) text embeddings.

        Returns `logits` (B, K, S/4, S/4), `heatmaps` (their spatial softmax), `points`
        (B, K, 2) normalised (x, y), `rot6d` (B, 6), `rotation` (B, 3, 3), `hand_pose` (B, 45).
        """
        return self.heads(self.features(images), text)

