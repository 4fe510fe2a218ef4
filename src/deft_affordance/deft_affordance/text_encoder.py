"""
The frozen CLIP text tower of the affordance model: task strings -> L2-normalised embeddings.

It loads from paths only (nothing is downloaded): an open_clip model name or a path to an
open_clip model config JSON, plus a state dict, `.pt`/`.bin` read with
`torch.load(weights_only=True)` or `.safetensors`. With no weights path the tower is randomly
initialised (seeded) only when `allow_random` is set (tests, dry runs); otherwise a ValueError says
which path is missing. It is never trained, so checkpoints do not hold it: they name it, keep its
weights path and a fingerprint (`TextEncoder.probe`, the embedding of a fixed prompt).
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from deft_affordance.encoders import load_weights_file
from deft_common.checkpoint import first_line

TEXT_PROBE = 'pick up the cup'   # prompt whose embedding fingerprints the CLIP text tower
PROBE_SIZE = 16


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

