"""phi(I0): the image features the residual policy is conditioned on (ResNet-18, global-pooled)."""

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from deft_affordance.encoders import IMAGENET_MEAN, IMAGENET_STD
from deft_common.checkpoint import first_line

RESNET_DIM = 512
PROBE_SIZE = 16          # feature values of a fixed probe image kept to check the extractor


def probe_image(size: int = 64) -> np.ndarray:
    """Return a fixed synthetic RGB image used to fingerprint a feature extractor."""
    u, v = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size))
    rgb = np.stack([u, v, 0.5 + 0.5 * np.sin(6 * np.pi * u * v)], axis=-1)
    return (255 * rgb).round().astype(np.uint8)


class ResNetFeatures:
    """
    phi(I0): ResNet-18 global-pooled features (512) of the whole frame, resized to a square.

    The frame is resized without cropping so the object's placement stays in view. `weights` is a
    path to a torchvision ResNet-18 state dict (read with weights_only=True; an `fc.*` head is
    ignored); empty means a random initialisation seeded by `init_seed`, reproducible on the same
    torch version: an honest stand-in where no pretrained weights are available.
    """

    dim = RESNET_DIM

    def __init__(self, weights: str = '', image_size: int = 224, init_seed: int = 0):
        import torchvision

        if image_size < 32:
            raise ValueError(f'image_size {image_size} is too small for ResNet-18 (>= 32)')
        self.weights, self.image_size, self.init_seed = str(weights or ''), image_size, init_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Identity()
        if self.weights:
            try:
                net.load_state_dict(_resnet_state(Path(self.weights)))
            except RuntimeError as exc:
                raise ValueError(f'{self.weights} does not fit ResNet-18: '
                                 f'{first_line(exc)}') from exc
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        """Return an (n, 512) array of features of H x W x 3 uint8 RGB images."""
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = []
        for k in range(0, len(images), batch):
            xs = []
            for img in images[k:k + batch]:
                img = np.asarray(img)
                if img.ndim != 3 or img.shape[2] != 3:
                    raise ValueError(f'expected an H x W x 3 RGB image, got shape {img.shape}')
                x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
                xs.append(nn.functional.interpolate(
                    x, size=(self.image_size, self.image_size), mode='bilinear',
                    align_corners=False, antialias=True))
            out.append(self.net((torch.cat(xs) - mean) / std).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))

    def probe(self) -> List[float]:
        """Return the first features of the probe image: a fingerprint of these weights."""
        return [float(v) for v in self([probe_image()])[0, :PROBE_SIZE]]


def _resnet_state(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f'ResNet-18 weights {path} not found')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise ValueError(f'{path} is not a ResNet-18 state dict: {first_line(exc)}') from exc
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} is not a ResNet-18 state dict (a dict of tensors)')
    return {k: v for k, v in state.items() if not k.startswith('fc.')}
