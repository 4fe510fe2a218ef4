"""
The DEFT affordance model f(object crop, task) -> (contact points, wrist rotation, MANO pose).

Network (`AffordanceNet`), as in the paper:

    crop (S x S RGB) -> ResNet trunk (conv1..layer4) -> C x S/32 x S/32 feature map
        -> deconvolutions (3 x ConvTranspose2d stride 2, BN, ReLU) -> 1x1 conv
        -> K contact heatmaps (S/4 x S/4) -> spatial softmax -> K contact points
    task text -> CLIP text tower (open_clip, frozen) -> text embedding
    [rotation query, pose query, text token, pooled visual token, S/32 x S/32 visual tokens]
        -> transformer encoder -> rotation query -> 6D rotation -> wrist quaternion (x y z w)
                               -> pose query -> MANO hand pose (45 axis-angle values)

Coordinates. A contact point is (u, v) in pixels of the crop as given: u the column, v the row,
integer values at pixel centres (pixel (0, 0) covers [-0.5, 0.5]^2). Inside the network points are
normalised, x = (u + 0.5) / width in [0, 1] (same for v with the height), so the heatmap cell j of
w cells has its centre at x = (j + 0.5) / w. A crop that is not square is resized to a square, and
the points are mapped back per axis.

The wrist rotation uses the continuous 6D representation of Zhou et al. (CVPR 2019): the first two
columns of the rotation matrix, made orthonormal by Gram-Schmidt (`rot6d_to_matrix`). It is output
as a unit quaternion in ROS order (x, y, z, w), w >= 0. Its frame is the dataset's (see
`deft_affordance.dataset`): the MANO wrist frame expressed in the camera optical frame.

Pretrained parts load from paths only (nothing is downloaded): the ResNet (`resnet18` and `r3m`
through `deft_affordance.encoders.build_encoder`, `resnet50` from a torchvision state dict) and
the CLIP text tower (an open_clip model name or a path to an open_clip model config JSON, plus a
state dict, `.pt`/`.bin` read with `torch.load(weights_only=True)` or `.safetensors`). With no
path, a part is randomly initialised (seeded) only when `allow_random` is set (tests, dry runs);
otherwise a ValueError says which path is missing.

A checkpoint is a `torch.save` of plain values: the JSON config, the network's named tensors and a
SHA-256 over both. The frozen CLIP text tower is not in it (it is large and never trained): the
config names it, keeps its weights path and a fingerprint (the embedding of a fixed prompt), and
`AffordanceModel.load` refuses a text tower that does not reproduce the fingerprint.
"""

from dataclasses import asdict, dataclass, field, fields
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from deft_common.checkpoint import checksum, first_line, read_checkpoint
from deft_affordance.encoders import build_encoder, build_trunk, load_weights_file
from deft_common.runs import atomic_write
from deft_common import rotations
from deft_common.torch_device import torch_device

BACKBONES = ('resnet18', 'resnet50', 'r3m')
CHECKPOINT_FORMAT = 'deft_affordance_model'
CHECKPOINT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HAND_POSE_DIM = 45
TEXT_PROBE = 'pick up the cup'   # prompt whose embedding fingerprints the CLIP text tower
PROBE_SIZE = 16
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

PathLike = Union[str, os.PathLike]


check_device = torch_device  # the shared check (deft_common.torch_device)


# --- geometry -------------------------------------------------------------------------------
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


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Return (..., 3, 3) rotation matrices of (..., 4) quaternions (x, y, z, w), normalised."""
    x, y, z, w = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).view(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Return the unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix."""
    return rotations.from_matrix(rot)


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


# --- preprocessing --------------------------------------------------------------------------
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


# --- CLIP text tower ------------------------------------------------------------------------
def clip_model_config(clip_model: str) -> Dict:
    """
    Return the open_clip model config of `clip_model`: a built-in name or a config JSON path.

    A JSON file holds `embed_dim`, `vision_cfg` and `text_cfg` as open_clip's own
    `model_configs/*.json` (a small one makes a fast text tower for tests).
    """
    import open_clip

    if str(clip_model).endswith('.json'):
        path = Path(clip_model)
        try:
            cfg = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f'CLIP model config {str(path)!r} not found') from None
        except (OSError, ValueError) as exc:
            raise ValueError(f'CLIP model config {str(path)!r} is not JSON: {exc}') from exc
    else:
        cfg = open_clip.get_model_config(clip_model)
        if cfg is None:
            raise ValueError(f'unknown CLIP model {clip_model!r}: give an open_clip model name '
                             "(e.g. 'ViT-B-32'; open_clip.list_models()) or a config .json path")
    if not isinstance(cfg, dict) or not all(k in cfg for k in ('embed_dim', 'vision_cfg',
                                                                'text_cfg')):
        raise ValueError(f'CLIP model config of {clip_model!r} needs embed_dim, vision_cfg and '
                         'text_cfg')
    if cfg.get('custom_text') or 'hf_model_name' in cfg['text_cfg'] \
            or 'hf_tokenizer_name' in cfg['text_cfg'] or 'multimodal_cfg' in cfg:
        raise ValueError(f'CLIP model {clip_model!r} has a custom or Hugging Face text tower; '
                         "only CLIP-style open_clip models (e.g. 'ViT-B-32', 'ViT-S-32-alt') "
                         'are supported offline here')
    return cfg


def _clip_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f'CLIP weights {str(path)!r} not found')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        try:
            state = load_file(str(path), device='cpu')
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f'CLIP weights {str(path)!r} are not a safetensors file: '
                             f'{first_line(exc)}') from exc
    else:
        state = load_weights_file(path)  # weights_only=True, ValueError saying why
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f'CLIP weights {str(path)!r} are not a state dict (names -> tensors)')
    if next(iter(state)).startswith('module.'):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


class TextEncoder(nn.Module):
    """The frozen CLIP text tower: task strings -> L2-normalised embeddings (cached)."""

    def __init__(self, clip_model: str, clip_weights: str = '', allow_random: bool = False,
                 config: Optional[Dict] = None, init_seed: int = 0):
        """Build the text tower of `clip_model` (name or config JSON) with `clip_weights`."""
        super().__init__()
        from open_clip.model import CLIP
        from open_clip.tokenizer import SimpleTokenizer

        cfg = dict(config) if config is not None else clip_model_config(clip_model)
        if not clip_weights and not allow_random:
            raise ValueError(f'no weights for the CLIP text tower {clip_model!r}: give the path '
                             'of its state dict (.pt/.bin/.safetensors, e.g. '
                             'open_clip_pytorch_model.bin); nothing can be downloaded here '
                             '(random weights only with allow_random)')
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = CLIP(**cfg)  # what open_clip.create_model(name, pretrained=None) builds
        if clip_weights:
            state = _clip_state_dict(Path(clip_weights))
            if 'logit_scale' in state and state['logit_scale'].ndim != model.logit_scale.ndim:
                state['logit_scale'] = state['logit_scale'].reshape(model.logit_scale.shape)
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as exc:
                raise ValueError(f'CLIP weights {clip_weights!r} do not fit {clip_model!r}: '
                                 f'{first_line(exc)}') from exc
            text_missing = [k for k in missing if not k.startswith('visual.')
                            and k not in ('logit_scale', 'logit_bias')]
            if text_missing or unexpected:
                raise ValueError(f'CLIP weights {clip_weights!r} do not fit {clip_model!r}: '
                                 f'missing {text_missing[:4]}, unexpected {unexpected[:4]}')
        if not hasattr(model, 'token_embedding'):
            raise ValueError(f'CLIP model {clip_model!r} has no open_clip text transformer')
        model.visual = None  # the image tower is never used: free it
        self.clip = model.eval().requires_grad_(False)
        self.tokenizer = SimpleTokenizer(context_length=cfg['text_cfg'].get('context_length', 77))
        self.dim = int(cfg['embed_dim'])
        self._cache: Dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> 'TextEncoder':
        """Keep the frozen tower in evaluation mode whatever the caller asks."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, tasks: Sequence[str]) -> torch.Tensor:
        """Return the (n, dim) normalised CLIP embeddings of task strings."""
        device = self.clip.token_embedding.weight.device
        for t in tasks:  # one at a time: an embedding never depends on its batch-mates
            if t not in self._cache:
                if len(self._cache) >= 4096:
                    self._cache = {}
                self._cache[t] = self.clip.encode_text(self.tokenizer([t]).to(device),
                                                       normalize=True)[0]
        return torch.stack([self._cache[t] for t in tasks])

    def probe(self) -> List[float]:
        """Return the first values of the probe prompt's embedding: a fingerprint."""
        return [float(v) for v in self([TEXT_PROBE])[0, :PROBE_SIZE].cpu()]

    def _apply(self, fn, recurse=True):
        self._cache = {}
        return super()._apply(fn, recurse)


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


# --- the model users call -------------------------------------------------------------------
@dataclass
class AffordancePrediction:
    """The affordance prior of one crop and task."""

    contact_points: np.ndarray    # (K, 2) float64: (u, v) pixels of the crop as given
    heatmaps: np.ndarray          # (K, S/4, S/4) float32 probabilities (cells span the crop)
    wrist_quaternion: np.ndarray  # (4,) float64 (x, y, z, w), w >= 0; frame: see the dataset
    hand_pose: np.ndarray         # (45,) float64 MANO axis-angle, 15 joints x 3, radians

    @property
    def mean_contact(self) -> np.ndarray:
        """Return the mean contact point (u, v): what the robot lifts to 3D with depth."""
        return self.contact_points.mean(axis=0)


class AffordanceModel:
    """f(crop, task): the network, its frozen CLIP text tower, its config and device."""

    def __init__(self, cfg: AffordanceConfig, net: AffordanceNet, text: TextEncoder,
                 device: str = 'cpu'):
        """Wrap built parts; see `build` (new model) and `load` (checkpoint)."""
        self.config = cfg
        self.device = check_device(device)
        self.net = net.to(self.device).eval()
        self.text = text.to(self.device)

    @classmethod
    def build(cls, backbone: str = 'resnet18', backbone_weights: str = '',
              clip_model: str = 'ViT-B-32', clip_weights: str = '', allow_random: bool = False,
              device: str = 'cpu', **options) -> 'AffordanceModel':
        """
        Build a new (untrained heads) model from pretrained parts given by path.

        `options` are further `AffordanceConfig` fields (image_size, num_contacts, d_model, ...).
        ValueError, saying which, for a missing path without `allow_random`, a bad file or value.
        """
        check_device(device)
        clip_config = clip_model_config(clip_model)
        cfg = AffordanceConfig(backbone=backbone, backbone_weights=str(backbone_weights or ''),
                               clip_model=str(clip_model), clip_config=clip_config,
                               clip_weights=str(clip_weights or ''),
                               text_dim=int(clip_config['embed_dim']), **options)
        text = TextEncoder(clip_model, cfg.clip_weights, allow_random, clip_config,
                           cfg.init_seed)
        cfg.text_probe = text.probe()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            trunk, cfg.trunk_arch = build_backbone(backbone, cfg.backbone_weights, allow_random)
            net = AffordanceNet(cfg, trunk)
        return cls(cfg, net, text, device)

    # --- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, crops: Sequence[np.ndarray],
                      tasks: Sequence[str]) -> List[AffordancePrediction]:
        """Predict the prior of each (crop, task) pair; crops are H x W x 3 uint8 RGB."""
        if len(crops) != len(tasks):
            raise ValueError(f'{len(crops)} crops but {len(tasks)} tasks')
        for t in tasks:
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f'a task must be a non-empty string, got {t!r}')
        if not crops:
            return []
        size = self.config.image_size
        x = torch.stack([crop_to_tensor(c, size) for c in crops]).to(self.device)
        self.net.eval()
        out = self.net(x, self.text(list(tasks)))
        preds = []
        for i, crop in enumerate(crops):
            h, w = crop.shape[:2]
            pts = out['points'][i].double().cpu().numpy() * [w, h] - 0.5
            preds.append(AffordancePrediction(
                contact_points=pts,
                heatmaps=out['heatmaps'][i].float().cpu().numpy(),
                wrist_quaternion=matrix_to_quaternion(out['rotation'][i].double().cpu().numpy()),
                hand_pose=out['hand_pose'][i].double().cpu().numpy()))
        return preds

    def predict(self, crop_rgb: np.ndarray, task: str) -> AffordancePrediction:
        """Predict contact points, wrist quaternion and MANO pose of one crop for a task."""
        return self.predict_batch([crop_rgb], [task])[0]

    # --- checkpoint -------------------------------------------------------------------------
    def tensors(self) -> Dict[str, torch.Tensor]:
        """Return the network's tensors by name, on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def save(self, path: PathLike) -> Path:
        """Write the checkpoint (JSON config, named tensors, checksum) atomically."""
        config, tensors = self.config.to_json(), self.tensors()
        payload = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
                   'config': config, 'tensors': tensors, 'checksum': checksum(config, tensors)}
        return atomic_write(Path(path), lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, path: PathLike, clip_weights: Optional[str] = None, device: str = 'cpu',
             allow_random: bool = False) -> 'AffordanceModel':
        """
        Load a checkpoint written by `save`, safely; ValueError saying what is wrong.

        `clip_weights` overrides the CLIP weights path stored in the checkpoint (the file may
        live elsewhere on the robot); the text tower must reproduce the training fingerprint. A
        model trained with a random text tower loads only with `allow_random`.
        """
        path = Path(path)
        check_device(device)
        config, tensors = read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
                                          'affordance')
        try:
            cfg = AffordanceConfig.from_json(config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path}: invalid config: {exc}') from exc
        weights = cfg.clip_weights if clip_weights is None else str(clip_weights)
        if not weights and not allow_random:
            raise ValueError(f'{path} was trained with a random CLIP text tower ({cfg.clip_model})'
                             ' and no CLIP weights were given: a dry-run model; load it with '
                             'allow_random (--allow-random) or pass the CLIP weights it was '
                             'trained with')
        text = TextEncoder(cfg.clip_model, weights, allow_random, cfg.clip_config, cfg.init_seed)
        if not np.allclose(text.probe(), cfg.text_probe, rtol=1e-3, atol=1e-4):
            raise ValueError(f'{path}: the CLIP text tower ({cfg.clip_model}, weights '
                             f'{weights or "random init"!r}) is not the one the model was '
                             'trained with; pass the same CLIP weights file')
        net = AffordanceNet(cfg, build_trunk(cfg.trunk_arch))
        try:
            net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f'{path}: weights do not fit the config: {first_line(exc)}') \
                from exc
        if not all(torch.all(torch.isfinite(v)) for v in tensors.values()
                   if v.is_floating_point()):
            raise ValueError(f'{path}: weights are not finite')
        return cls(cfg, net, text, device)
