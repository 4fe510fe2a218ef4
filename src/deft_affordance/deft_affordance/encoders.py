"""Image encoders: ResNet trunks (classifier removed, average-pooled features) from weights files.

They give the embedding reward its image embedding (deft_affordance.embedding_reward) and the
affordance model its visual trunk. Two kinds of weights files are read:

- ``resnet18``: a torchvision ResNet-18 ``state_dict`` (with or without its ``fc`` layer), e.g.
  ``torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)``;
- ``r3m``: an R3M checkpoint (``model.pt`` of r3m_18 / r3m_34 / r3m_50), a dict whose ``'r3m'``
  entry is the state dict of R3M's module, trunk keys prefixed ``module.convnet.``; the depth is
  recognised from the keys, the language head (``module.lang_enc.`` / ``module.lang_rew.``) is
  ignored.

Weights are read with ``torch.load(..., weights_only=True)`` only: a file holding arbitrary Python
objects is refused, never unpickled. Nothing is downloaded. Images are (H, W, 3) uint8 RGB
arrays (``deft_common.image_codec.to_rgb`` gives that from a sensor_msgs/Image); they are resized
(shorter side 256), centre-cropped to 224 x 224 and normalised with the ImageNet statistics, as
both torchvision's ResNets and R3M expect.
"""

import os
from pathlib import Path
import re
from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
import torchvision
from torchvision.transforms.v2 import functional as tvf

ENCODERS = ('resnet18', 'r3m')
RESIZE = 256
CROP = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
R3M_PREFIX = 'module.convnet.'
R3M_IGNORED_PREFIXES = ('module.lang_enc.', 'module.lang_rew.')
R3M_TRUNKS = ('resnet18', 'resnet34', 'resnet50')  # the sizes R3M was released in
_FC_KEYS = ('fc.weight', 'fc.bias')


def check_image(image: np.ndarray, what: str = 'image') -> np.ndarray:
    """Return `image` if it is an (H, W, 3) uint8 RGB array, else raise ValueError saying why."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f'{what} must be a numpy array (H, W, 3) uint8 RGB, '
                         f'got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'{what} must have dtype uint8 (RGB 0..255), got {image.dtype}; '
                         'convert colour images with deft_common.image_codec.to_rgb')
    if image.ndim != 3 or image.shape[2] != 3:
        hint = ' (drop the alpha channel)' if image.ndim == 3 and image.shape[2] == 4 else ''
        raise ValueError(f'{what} must have shape (H, W, 3), got {image.shape}{hint}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f'{what} is empty: shape {image.shape}')
    return image


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raise ValueError if missing or unreadable."""
    from PIL import Image, UnidentifiedImageError  # torchvision depends on Pillow

    path = Path(path)
    if not path.is_file():
        raise ValueError(f'goal image {str(path)!r} does not exist or is not a file')
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('RGB'), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f'goal image {str(path)!r} cannot be read as an image: {exc}') from exc


def preprocess(image: np.ndarray) -> torch.Tensor:
    """Turn an (H, W, 3) uint8 RGB array into a (1, 3, 224, 224) ImageNet-normalised tensor."""
    image = check_image(image)
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    chw = tvf.resize(chw, [RESIZE], antialias=True)  # shorter side to RESIZE, aspect kept
    chw = tvf.center_crop(chw, [CROP, CROP])
    x = tvf.to_dtype(chw, torch.float32, scale=True)
    x = tvf.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
    return x.unsqueeze(0)


def build_trunk(arch: str) -> nn.Module:
    """Build a torchvision ResNet (random weights), fc Identity: image -> pooled features."""
    if arch not in R3M_TRUNKS:
        raise ValueError(f'unknown ResNet {arch!r}; expected one of {", ".join(R3M_TRUNKS)}')
    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = nn.Identity()
    return model


def _trunk_keys(arch: str) -> Sequence[str]:
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        return list(build_trunk(arch).state_dict())


def _key_summary(missing: Sequence[str], unexpected: Sequence[str], limit: int = 4) -> str:
    parts = []
    for name, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            shown = ', '.join(repr(k) for k in list(keys)[:limit])
            more = f' and {len(keys) - limit} more' if len(keys) > limit else ''
            parts.append(f'{len(keys)} {name} key(s): {shown}{more}')
    return '; '.join(parts)


def load_weights_file(path: Union[str, os.PathLike]) -> object:
    """Read a checkpoint with torch.load(weights_only=True); else raise ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'weights file {str(path)!r} does not exist or is not a file')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        found = re.search(r'Unsupported global: [^\n]*', str(exc))
        detail = found.group(0) if found else f'{type(exc).__name__}: {str(exc).splitlines()[0]}'
        raise ValueError(
            f'weights file {str(path)!r} cannot be loaded with weights_only=True ({detail}). '
            'Only tensors and plain containers are accepted, never pickled Python objects: '
            're-save it with torch.save(model.state_dict(), path)') from exc


def _tensor_dict(obj: object, path: Union[str, os.PathLike], what: str) -> Dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValueError(f'weights file {str(path)!r}: {what} is not a state dict '
                         '(a mapping of parameter names to tensors)')
    return dict(obj)


def resnet18_state_dict(obj: object, path: Union[str, os.PathLike]) -> Dict[str, torch.Tensor]:
    """Check a loaded torchvision ResNet-18 state dict; return it without fc, else ValueError."""
    if isinstance(obj, Mapping) and 'r3m' in obj:
        raise ValueError(f"weights file {str(path)!r} holds an 'r3m' entry, so it looks like an "
                         "R3M checkpoint: set the encoder to 'r3m'")
    state = _tensor_dict(obj, path, 'the file')
    state = {k: v for k, v in state.items() if k not in _FC_KEYS}
    expected = _trunk_keys('resnet18')
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in set(expected)]
    if missing or unexpected:
        hint = ''
        if any(k.startswith(R3M_PREFIX) for k in state):
            hint = " It looks like an R3M checkpoint: set the encoder to 'r3m'."
        raise ValueError(f'weights file {str(path)!r} is not a torchvision ResNet-18 state dict: '
                         f'{_key_summary(missing, unexpected)}.{hint}')
    return state


def r3m_state_dict(obj: object,
                   path: Union[str, os.PathLike]) -> Tuple[str, Dict[str, torch.Tensor]]:
    """Check a loaded R3M checkpoint; return (trunk arch, trunk state dict), else ValueError."""
    if not isinstance(obj, Mapping) or 'r3m' not in obj:
        keys = list(obj)[:4] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f'weights file {str(path)!r} is not an R3M checkpoint: expected a dict '
                         f"with an 'r3m' entry, found {keys}")
    raw = _tensor_dict(obj['r3m'], path, "its 'r3m' entry")
    raw = {k: v for k, v in raw.items() if not k.startswith(R3M_IGNORED_PREFIXES)}
    state = {k[len(R3M_PREFIX):]: v for k, v in raw.items() if k.startswith(R3M_PREFIX)}
    foreign = [k for k in raw if not k.startswith(R3M_PREFIX)]
    best = None
    for arch in R3M_TRUNKS:
        expected = _trunk_keys(arch)
        missing = [R3M_PREFIX + k for k in expected if k not in state]
        unexpected = foreign + [R3M_PREFIX + k for k in state if k not in set(expected)]
        if not missing and not unexpected:
            return arch, state
        if best is None or len(missing) + len(unexpected) < len(best[1]) + len(best[2]):
            best = (arch, missing, unexpected)
    arch, missing, unexpected = best
    raise ValueError(f"weights file {str(path)!r}: the 'r3m' state dict matches none of the R3M "
                     f'trunks ({", ".join(R3M_TRUNKS)}); closest is {arch} with '
                     f'{_key_summary(missing, unexpected)}')


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor],
               path: Union[str, os.PathLike]) -> None:
    # assign=True keeps the file's tensors as they are: make them float32 (a checkpoint saved in
    # half precision would otherwise give a half model) and contiguous.
    state = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shapes that do not fit (the keys were checked already)
        lines = [ln.strip() for ln in str(exc).splitlines() if 'size mismatch' in ln]
        detail = '; '.join(lines[:3]) or str(exc).splitlines()[0]
        raise ValueError(f'weights file {str(path)!r} does not fit the encoder: {detail}') from exc


def build_encoder(encoder: str, weights_path: str, allow_random: bool = False) -> nn.Module:
    """Build the encoder named `encoder` (see ENCODERS) with the weights at `weights_path`.

    An empty `weights_path` gives random weights only with `allow_random` (tests, dry runs);
    such an encoder measures nothing meaningful about a grasp.
    """
    if encoder not in ENCODERS:
        raise ValueError(f'encoder {encoder!r} is not one of {", ".join(ENCODERS)}')
    if not weights_path:
        if not allow_random:
            raise ValueError(
                f'no weights for the {encoder} encoder: give the path of a '
                + ('torchvision ResNet-18 state_dict (.pt/.pth)' if encoder == 'resnet18'
                   else 'R3M checkpoint (model.pt of r3m_18/34/50)')
                + '; nothing can be downloaded here (random weights only with allow_random)')
        return build_trunk('resnet18')
    obj = load_weights_file(weights_path)
    if encoder == 'resnet18':
        arch, state = 'resnet18', resnet18_state_dict(obj, weights_path)
    else:
        arch, state = r3m_state_dict(obj, weights_path)
    with torch.device('meta'):  # no random initialisation: every tensor comes from the file
        model = build_trunk(arch)
    _load_into(model, state, weights_path)
    return model
