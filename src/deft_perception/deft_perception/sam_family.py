"""
What the SAM-family segmentation backends (`sam`, `mobile_sam`) share.

Both are a promptable image encoder + SAM's prompt encoder and mask decoder behind the same
predictor API (`set_image`, `predict`, `predict_torch`); only the image encoder and the package
that builds it differ. Shared here: the safe state-dict loader, the salient-object score, the
CLIP ranker of label prompts and `PromptSegmenter`, which turns a prompt into a mask.

Weights only ever come from file paths, read with `torch.load(weights_only=True)` and checked
key by key and shape by shape against the model before use; the model packages' own loaders
(a plain `torch.load`, which may run pickled code) are never called. Without a checkpoint a
model is randomly initialised, which the backends allow only with `allow_random=True` (tests
and dry runs: the masks are then meaningless).

Prompts:
- `point`: one foreground click, three candidate masks, the one with the highest predicted IoU.
- `box`: the box, one mask.
- salient (no prompt): proposals from a few point prompts (a 3 x 3 grid over the central half of
  the image, plus one point inside each object the `depth` backend finds on the support plane),
  run as one batch. Each candidate is scored by `salience` (size x the model's stability and
  predicted IoU x support plane).
- `label`: the same proposals, each cropped and ranked by CLIP image-text similarity; needs a
  CLIP model name and weights file (`ClipRanker`), else a SegmentationError saying so.

The image embedding (the expensive part) is cached per frame, keyed by a BLAKE2 digest of the
image bytes and shape (about a millisecond for VGA). `build_seconds` and `last_timing` expose
the construction cost and the last call's latency.
"""

import hashlib
import logging
from pathlib import Path
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from deft_common.torch_device import torch_device
from deft_perception.depth_backend import DepthPlaneSegmenter
from deft_perception.geometry import CameraModel, crop_resize, crop_window, mask_box
from deft_perception.prompts import Prompt
from deft_perception.segmenter import SegmentationError, Segmenter

LOG = logging.getLogger(__name__)


def load_state_dict_file(model: torch.nn.Module, path: str, what: str) -> None:
    """
    Load a state dict saved with torch.save(model.state_dict()) into the model, safely.

    ValueError naming the file and what is wrong: missing, not a plain tensor dict (a pickled
    object is refused by weights_only loading), missing or unexpected keys, tensors whose shape
    differs from the model's (the first few listed as key: file shape vs model shape). A dict
    holding only 'model' or 'state_dict' is unwrapped first.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f'{what} checkpoint {path!r} does not exist')
    try:
        state = torch.load(file, map_location='cpu', weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... all mean "not weights"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f'{what} checkpoint {path!r} is not a plain state dict of tensors '
                         f'(refused by torch.load(weights_only=True): {first})') from None
    if isinstance(state, dict) and set(state) in ({'model'}, {'state_dict'}):
        state = next(iter(state.values()))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f'{what} checkpoint {path!r} is not a state dict of tensors '
                         f'(got {type(state).__name__})')
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f'{what} checkpoint {path!r} does not fit the model: {len(missing)} missing keys '
            f'{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]} (wrong model '
            'type or not a checkpoint of this model?)')
    wrong = [f'{k}: {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model'
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f'{what} checkpoint {path!r} has {len(wrong)} tensors of the wrong '
                         f'shape (wrong model type?): {"; ".join(wrong[:3])}')
    model.load_state_dict(state, strict=True)


def stability_score(logits: torch.Tensor, threshold: float, offset: float = 1.0) -> torch.Tensor:
    """
    Return each mask's stability: IoU of the mask thresholded at threshold + and - offset.

    `logits` is N x H x W mask logits; the result is N values in [0, 1] (1: the mask does not
    change when the threshold moves by `offset`; an empty loose mask counts as stable).
    """
    tight = (logits > threshold + offset).flatten(1).sum(dim=1, dtype=torch.float32)
    loose = (logits > threshold - offset).flatten(1).sum(dim=1, dtype=torch.float32)
    return torch.where(loose > 0, tight / loose.clamp(min=1.0), torch.ones_like(loose))


def salience(area_fraction: np.ndarray, stability: np.ndarray, predicted_iou: np.ndarray,
             on_plane: Optional[np.ndarray] = None, max_area_fraction: float = 0.5,
             min_area_fraction: float = 0.001) -> np.ndarray:
    """
    Score salient-object candidates: sqrt(area fraction) x quality x support-plane term.

    Candidates outside [min_area_fraction, max_area_fraction] of the image score 0 (specks, and
    the table or background). The quality is the mean of SAM's stability score (the IoU of the
    mask thresholded at logit +1 and -1) and its predicted IoU clipped to [0, 1], floored at
    0.001 so that size still orders candidates SAM is unsure of. With depth, the plane term is
    0.25 + 0.75 x the fraction of the mask lying on objects standing on the support plane, so an
    object on the table wins over a patch of the table or the wall of the same size and quality.
    """
    area = np.asarray(area_fraction, float)
    quality = 0.5 * (np.asarray(stability, float) + np.clip(predicted_iou, 0.0, 1.0))
    score = np.sqrt(area) * np.maximum(quality, 1e-3)
    if on_plane is not None:
        score = score * (0.25 + 0.75 * np.asarray(on_plane, float))
    return np.where((area >= min_area_fraction) & (area <= max_area_fraction), score, 0.0)


class ClipRanker:
    """Rank image crops by open_clip image-text similarity (weights from a file only)."""

    def __init__(self, model_name: str, weights: str, device: str = 'cpu',
                 allow_random: bool = False):
        import open_clip

        if not weights and not allow_random:
            raise ValueError('clip_weights is empty: a CLIP ranker needs a weights file')
        t0 = time.monotonic()
        self.device = torch_device(device)
        try:
            model = open_clip.create_model(model_name, pretrained=None, pretrained_text=False,
                                           device='cpu')
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise ValueError(f'clip_model {model_name!r}: {exc}') from None
        if weights:
            load_state_dict_file(model, weights, f'CLIP {model_name}')
        self.model = model.to(self.device).eval()
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get('size', 224)
        self.size = int(size if isinstance(size, int) else size[0])
        self.mean = torch.tensor(cfg.get('mean', open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get('std', open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        self.text_cache: Dict[str, torch.Tensor] = {}
        self.build_seconds = time.monotonic() - t0

    @torch.no_grad()
    def _text(self, label: str) -> torch.Tensor:
        if label not in self.text_cache:
            tokens = self.tokenizer([f'a photo of a {label}']).to(self.device)
            feat = self.model.encode_text(tokens).float()
            self.text_cache[label] = feat / feat.norm(dim=-1, keepdim=True)
        return self.text_cache[label]

    @torch.no_grad()
    def similarity(self, crops: np.ndarray, label: str) -> np.ndarray:
        """Cosine similarity of each crop (N x S x S x 3 uint8, S = self.size) to the label."""
        x = torch.as_tensor(np.ascontiguousarray(crops), dtype=torch.float32) / 255.0
        x = ((x.permute(0, 3, 1, 2) - self.mean) / self.std).to(self.device)
        feat = self.model.encode_image(x).float()
        feat = feat / feat.norm(dim=-1, keepdim=True)
        return (feat @ self._text(label).T)[:, 0].cpu().numpy()

    def rank(self, crops: np.ndarray, label: str) -> Tuple[np.ndarray, np.ndarray]:
        """Return (indices best first, similarities); ties keep the crops' order."""
        sim = self.similarity(crops, label)
        return np.argsort(-sim, kind='stable'), sim


class PromptSegmenter(Segmenter):
    """
    A SAM-family model and its predictor behind the Segmenter interface (see the module doc).

    Subclasses build the model and the predictor of their package and set `backend`, the name
    used in messages.
    """

    backend = 'sam'

    def __init__(self, sam, predictor, device: str = 'cpu', clip_model: str = '',
                 clip_weights: str = '', grid: int = 3, depth_params: Optional[dict] = None,
                 clip: Optional[ClipRanker] = None, max_area_fraction: float = 0.5):
        """
        Take a built model and its predictor.

        `clip_model` + `clip_weights` configure the label ranker (or pass `clip`);
        `depth_params` are DepthPlaneSegmenter's keyword arguments for the salient proposals;
        `grid` is the side of the grid of point prompts of the salient proposals.
        """
        self.sam = sam
        self.predictor = predictor
        if clip is None and (clip_model or clip_weights):
            if not (clip_model and clip_weights):
                raise ValueError('a CLIP ranker needs both clip_model and clip_weights')
            clip = ClipRanker(clip_model, clip_weights, device)
        self.clip = clip
        self.grid = grid
        self.max_area_fraction = max_area_fraction
        self.depth = DepthPlaneSegmenter(**(depth_params or {}))
        self.frame_key: Optional[bytes] = None
        self.lock = threading.Lock()  # one predictor state: service calls may run concurrently
        self.build_seconds = 0.0
        self.last_timing: Dict[str, float] = {}

    @staticmethod
    def key(rgb: np.ndarray) -> bytes:
        """Identify a frame by its bytes and shape (a BLAKE2 digest: cheap next to SAM)."""
        digest = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16)
        digest.update(repr((rgb.shape, rgb.dtype.str)).encode())
        return digest.digest()

    def set_frame(self, rgb: np.ndarray) -> bool:
        """Compute the image embedding unless this frame has it already; True if computed."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'the {self.backend} backend needs an H x W x 3 uint8 RGB image, '
                             f'got {rgb.shape} {rgb.dtype}')
        key = self.key(rgb)
        if key == self.frame_key and self.predictor.is_image_set:
            return False
        self.frame_key = None
        self.predictor.set_image(rgb)
        self.frame_key = key
        return True

    def segment(self, rgb, depth, camera, prompt):
        """Return the mask the prompt picks (H x W bool)."""
        if prompt.kind == 'label' and self.clip is None:
            raise SegmentationError(f'a label prompt needs CLIP weights: set clip_model and '
                                    f'clip_weights (the {self.backend} backend takes "", '
                                    '"point: u, v" and "box: u0, v0, u1, v1" without them)')
        with self.lock:
            return self._segment(rgb, depth, camera, prompt)

    def _segment(self, rgb, depth, camera, prompt):
        t0 = time.monotonic()
        computed = self.set_frame(rgb)
        t1 = time.monotonic()
        if prompt.kind == 'point':
            masks, scores, _ = self.predictor.predict(
                point_coords=np.array([prompt.point], float), point_labels=np.array([1]),
                multimask_output=True)
            mask = masks[int(np.argmax(scores))]
        elif prompt.kind == 'box':
            masks, _, _ = self.predictor.predict(box=np.array(prompt.box, float),
                                                 multimask_output=False)
            mask = masks[0]
        else:
            mask = self._pick(rgb, depth, camera, prompt)
        t2 = time.monotonic()
        self.last_timing = {'set_image_s': t1 - t0 if computed else 0.0,
                            'embedding_cached': float(not computed), 'predict_s': t2 - t1,
                            'total_s': t2 - t0}
        LOG.debug('%s %s: embedding %s, predict %.3f s', self.backend, prompt.kind,
                  f'{t1 - t0:.2f} s' if computed else 'cached', t2 - t1)
        return np.asarray(mask, bool)

    def proposal_points(self, depth: np.ndarray, camera: CameraModel
                        ) -> Tuple[List[Tuple[float, float]], Optional[np.ndarray]]:
        """Return (point prompts, mask of objects on the support plane or None)."""
        h, w = depth.shape
        frac = (np.arange(self.grid) + 0.5) / self.grid * 0.5 + 0.25  # central half
        points = [(float(fu * w), float(fv * h)) for fv in frac for fu in frac]
        try:
            labels = self.depth.components(depth, camera)
        except SegmentationError:
            return points, None
        for i in np.unique(labels):
            if i:
                vv, uu = np.nonzero(labels == i)
                j = int(np.argmin(np.hypot(uu - uu.mean(), vv - vv.mean())))
                points.append((float(uu[j]), float(vv[j])))  # inside, near the centroid
        return points, labels > 0

    @torch.no_grad()
    def proposals(self, depth: np.ndarray, camera: CameraModel
                  ) -> Tuple[np.ndarray, np.ndarray]:
        """Return (candidate masks K x H x W bool, salience scores K) for the set frame."""
        points, on_objects = self.proposal_points(depth, camera)
        size = self.predictor.original_size
        coords = torch.as_tensor(np.array(points, float)[:, None, :], dtype=torch.float32,
                                 device=self.predictor.device)
        coords = self.predictor.transform.apply_coords_torch(coords, size)
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=coords.device)
        logits, iou, _ = self.predictor.predict_torch(coords, labels, multimask_output=True,
                                                      return_logits=True)
        logits = logits.flatten(0, 1)
        threshold = self.sam.mask_threshold
        stability = stability_score(logits, threshold, 1.0).cpu().numpy()
        masks = (logits > threshold).cpu().numpy()
        area = masks.reshape(len(masks), -1).mean(axis=1)
        on_plane = None
        if on_objects is not None:
            inside = (masks & on_objects).reshape(len(masks), -1).sum(axis=1)
            on_plane = inside / np.maximum(masks.reshape(len(masks), -1).sum(axis=1), 1)
        return masks, salience(area, stability, iou.flatten().cpu().numpy(), on_plane,
                               self.max_area_fraction)

    def _pick(self, rgb, depth, camera, prompt: Prompt) -> np.ndarray:
        masks, scores = self.proposals(depth, camera)
        ok = np.flatnonzero(scores > 0)
        if ok.size == 0:
            raise SegmentationError(
                f'no object proposal between 0.1 % and {100 * self.max_area_fraction:g} % of '
                'the image (SAM found only specks or background)')
        if prompt.kind != 'label':
            return masks[ok[int(np.argmax(scores[ok]))]]
        order, _ = self.clip.rank(self.crops(rgb, masks[ok]), prompt.label)
        return masks[ok[order[0]]]

    def crops(self, rgb: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
        """Square crops around each mask's box, at the CLIP input size (N x S x S x 3)."""
        h, w = rgb.shape[:2]
        return np.stack([crop_resize(rgb, crop_window(mask_box(m), 0.1, w, h), self.clip.size)
                         for m in masks])
