"""
The `sam` segmentation backend: Segment Anything (ViT image encoder), label prompts by CLIP.

The model is built by the `segment_anything` package with the registry's architecture of
`sam_model_type` and no checkpoint; the weights are then read from the `sam_checkpoint` file
by the safe loader of `deft_perception.sam_family`, which also holds the prompt handling, the
embedding cache and the CLIP ranker this backend shares with `mobile_sam`. One vit_b image
embedding takes tens of seconds on two CPU cores: `mobile_sam` is the fast one.
"""

import logging
from pathlib import Path
import time
from typing import Optional

from deft_common.torch_device import torch_device
from deft_perception.sam_family import ClipRanker, PromptSegmenter, load_state_dict_file

SAM_MODEL_TYPES = ('vit_b', 'vit_l', 'vit_h')
LOG = logging.getLogger(__name__)


def build_sam(model_type: str, checkpoint: str = '', allow_random: bool = False,
              device: str = 'cpu'):
    """Build a SAM model of `model_type` and load `checkpoint` safely; ValueError if unusable."""
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f'sam_model_type {model_type!r}; expected one of '
                         f'{", ".join(SAM_MODEL_TYPES)}')
    if not checkpoint and not allow_random:
        raise ValueError('the sam backend needs sam_checkpoint (a SAM state dict file, e.g. '
                         'sam_vit_b_01ec64.pth); sam_allow_random=true runs a randomly '
                         'initialised model for dry runs only')
    if checkpoint and not Path(checkpoint).is_file():  # before seconds of model building
        raise ValueError(f'SAM {model_type} checkpoint {checkpoint!r} does not exist')
    dev = torch_device(device)
    sam = sam_model_registry[model_type](checkpoint=None)
    if checkpoint:
        load_state_dict_file(sam, checkpoint, f'SAM {model_type}')
    return sam.to(dev).eval()


class SamSegmenter(PromptSegmenter):
    """Segment Anything behind the Segmenter interface; see deft_perception.sam_family."""

    backend = 'sam'

    def __init__(self, model_type: str = 'vit_b', checkpoint: str = '',
                 allow_random: bool = False, device: str = 'cpu',
                 clip_model: str = '', clip_weights: str = '', grid: int = 3,
                 depth_params: Optional[dict] = None, sam=None, clip: Optional[ClipRanker] = None,
                 max_area_fraction: float = 0.5):
        """
        Build the model (seconds) or take a prebuilt `sam` (tests: a shrunk SAM).

        The other arguments are PromptSegmenter's. ValueError saying what to set if the model
        cannot be built (see build_sam).
        """
        from segment_anything import SamPredictor

        t0 = time.monotonic()
        self.model_type = model_type
        source = 'prebuilt model' if sam is not None else \
            'checkpoint ' + checkpoint if checkpoint else 'random weights'
        if sam is None:
            sam = build_sam(model_type, checkpoint, allow_random, device)
        super().__init__(sam, SamPredictor(sam), device, clip_model, clip_weights, grid,
                         depth_params, clip, max_area_fraction)
        self.build_seconds = time.monotonic() - t0
        LOG.info('SAM %s built in %.1f s (%s)', model_type, self.build_seconds, source)
