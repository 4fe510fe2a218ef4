"""
The DEFT affordance model f(object crop, task) -> (contact points, wrist rotation, MANO pose).

`AffordanceModel` is what callers use: the network (deft_affordance.network), its frozen CLIP
text tower (deft_affordance.text_encoder), its config and device; `predict` returns contact points
in pixels of the crop, the wrist rotation as a unit quaternion in ROS order (x, y, z, w), w >= 0,
and the MANO hand pose. See deft_affordance.network for the architecture, the coordinates and the
frames.

A checkpoint is a `torch.save` of plain values: the JSON config, the network's named tensors and a
SHA-256 over both. The frozen CLIP text tower is not in it (it is large and never trained): the
config names it, keeps its weights path and a fingerprint (the embedding of a fixed prompt), and
`AffordanceModel.load` refuses a text tower that does not reproduce the fingerprint.
"""

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from deft_affordance.encoders import build_trunk
from deft_affordance.network import AffordanceConfig, AffordanceNet, build_backbone, crop_to_tensor
from deft_affordance.text_encoder import TextEncoder, clip_model_config
from deft_common import rotations
from deft_common.checkpoint import checksum, first_line, read_checkpoint
from deft_common.runs import atomic_write
from deft_common.torch_device import torch_device

CHECKPOINT_FORMAT = 'deft_affordance_model'
CHECKPOINT_VERSION = 1

PathLike = Union[str, os.PathLike]


check_device = torch_device  # the shared check (deft_common.torch_device)


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
                wrist_quaternion=rotations.from_matrix(
                    out['rotation'][i].double().cpu().numpy()),
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
