"""
The `mobile_sam` segmentation backend: MobileSAM, SAM with a TinyViT image encoder.

MobileSAM (Zhang et al. 2023) distils SAM's ViT-H image encoder into a 6M-parameter TinyViT and
keeps SAM's prompt encoder and mask decoder (10M parameters in all). The modules come from the
PyPI package `mobilesam-mirror` (Apache-2.0, the MobileSAM authors' code, imported as
`mobile_sam`); the weights from the user's state dict file (`mobile_sam_checkpoint`, e.g. the
authors' `mobile_sam.pt`), read by the safe loader of `deft_perception.sam_family`, which also
holds the prompt handling, the embedding cache and the CLIP ranker this backend shares with
`sam`.

Input size: the image is resized so that its longest side is `input_size` px and padded to a
square (SAM and the released MobileSAM weights use 1024). The architecture's weights do not
depend on it, so a 1024 px checkpoint loads at any size; a smaller size trades detail for time:
on the two-core development machines (one torch thread, 640 x 480 frame, one point prompt,
deft_perception.bench_perception) 2.6 s at 1024 px and 0.54 s at 512 px, the default. The size
must be a multiple of 16 (the encoder reduces the image 16 times, to the side / 16 square
embedding the decoder reads).

Importing `mobile_sam` registers its TinyViT variants in timm's model registry under timm's own
`tiny_vit_*` names (timm warns "Overwriting ..."); nothing in the stack builds those by name, and
the warnings are silenced at the import.
"""

import functools
import logging
from pathlib import Path
import time
from typing import Optional
import warnings

from deft_common.torch_device import torch_device
from deft_perception.sam_family import ClipRanker, PromptSegmenter, load_state_dict_file

TRAINED_INPUT_SIZE = 1024  # px: the input side of SAM and of the released MobileSAM weights
DEFAULT_INPUT_SIZE = 512  # px: under 1 s per new frame on two CPU cores (see the module doc)
INPUT_SIZE_RANGE = (64, 1024)
EMBED_DIM = 256  # channels of the image embedding and the prompt tokens
LOG = logging.getLogger(__name__)
PACKAGE = 'mobilesam-mirror==1.0.0'


@functools.lru_cache(maxsize=1)
def mobile_sam_modules():
    """
    Import the `mobile_sam` package once; return (modeling module, SamPredictor class).

    ValueError naming the package to install if it is missing.
    """
    try:
        with warnings.catch_warnings():  # timm registry overwrites, timm.models.layers moves
            warnings.simplefilter('ignore')
            from mobile_sam import SamPredictor, modeling
    except ImportError as exc:
        raise ValueError(f'the mobile_sam backend needs the Python package {PACKAGE} '
                         f'(pip install {PACKAGE}; see requirements/ml.txt): {exc}') from None
    return modeling, SamPredictor


@functools.lru_cache(maxsize=1)
def _encoder_class():
    modeling, _ = mobile_sam_modules()

    class SizedTinyViT(modeling.TinyViT):
        """TinyViT whose embedding side follows `img_size` (the package assumes 1024 px)."""

        def forward_features(self, x):
            x = self.patch_embed(x)
            for layer in self.layers:
                x = layer(x)
            side = self.img_size // 16
            tokens = x.view(x.shape[0], side, side, x.shape[-1])  # B x side^2 x C -> square
            return self.neck(tokens.permute(0, 3, 1, 2))

    return SizedTinyViT


def check_input_size(input_size: int) -> None:
    """ValueError unless `input_size` (px) is a multiple of 16 within INPUT_SIZE_RANGE."""
    low, high = INPUT_SIZE_RANGE
    if not low <= input_size <= high or input_size % 16:
        raise ValueError(f'mobile_sam_input_size {input_size} px: expected a multiple of 16 '
                         f'from {low} to {high} (the released weights use '
                         f'{TRAINED_INPUT_SIZE})')


def mobile_sam_model(input_size: int = DEFAULT_INPUT_SIZE):
    """
    Return a randomly initialised MobileSAM (vit_t) seeing images of `input_size` px.

    The layer sizes are those of the MobileSAM release, so its state dict loads unchanged.
    """
    check_input_size(input_size)
    modeling, _ = mobile_sam_modules()
    side = input_size // 16
    encoder = _encoder_class()(
        img_size=input_size, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
        mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8)
    prompt_encoder = modeling.PromptEncoder(
        embed_dim=EMBED_DIM, image_embedding_size=(side, side),
        input_image_size=(input_size, input_size), mask_in_chans=16)
    decoder = modeling.MaskDecoder(
        num_multimask_outputs=3, transformer_dim=EMBED_DIM, iou_head_depth=3,
        iou_head_hidden_dim=256,
        transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048,
                                               num_heads=8))
    return modeling.Sam(image_encoder=encoder, prompt_encoder=prompt_encoder,
                        mask_decoder=decoder, pixel_mean=[123.675, 116.28, 103.53],
                        pixel_std=[58.395, 57.12, 57.375]).eval()


def build_mobile_sam(checkpoint: str = '', allow_random: bool = False, device: str = 'cpu',
                     input_size: int = DEFAULT_INPUT_SIZE):
    """
    Build MobileSAM at `input_size` px and load `checkpoint` safely; ValueError if unusable.

    The errors say what to set: no checkpoint without allow_random, a missing file, a file that
    is not a MobileSAM state dict (keys or shapes, see load_state_dict_file), a bad input size
    or device, the package missing.
    """
    check_input_size(input_size)
    if not checkpoint and not allow_random:
        raise ValueError('the mobile_sam backend needs mobile_sam_checkpoint (a MobileSAM state '
                         'dict file, e.g. mobile_sam.pt); sam_allow_random=true runs a randomly '
                         'initialised model for dry runs only')
    if checkpoint and not Path(checkpoint).is_file():  # before seconds of model building
        raise ValueError(f'MobileSAM checkpoint {checkpoint!r} does not exist')
    dev = torch_device(device)
    model = mobile_sam_model(input_size)
    if checkpoint:
        load_state_dict_file(model, checkpoint, 'MobileSAM')
    return model.to(dev).eval()


class MobileSamSegmenter(PromptSegmenter):
    """MobileSAM behind the Segmenter interface; see deft_perception.sam_family."""

    backend = 'mobile_sam'

    def __init__(self, checkpoint: str = '', allow_random: bool = False, device: str = 'cpu',
                 input_size: int = DEFAULT_INPUT_SIZE, clip_model: str = '',
                 clip_weights: str = '', grid: int = 3, depth_params: Optional[dict] = None,
                 sam=None, clip: Optional[ClipRanker] = None, max_area_fraction: float = 0.5):
        """
        Build the model (a few seconds, most of it importing the package) or take `sam`.

        The other arguments are PromptSegmenter's. ValueError saying what to set if the model
        cannot be built (see build_mobile_sam).
        """
        t0 = time.monotonic()
        source = 'prebuilt model' if sam is not None else \
            'checkpoint ' + checkpoint if checkpoint else 'random weights'
        if sam is None:
            sam = build_mobile_sam(checkpoint, allow_random, device, input_size)
        _, predictor = mobile_sam_modules()
        super().__init__(sam, predictor(sam), device, clip_model, clip_weights, grid,
                         depth_params, clip, max_area_fraction)
        self.input_size = int(sam.image_encoder.img_size)
        self.build_seconds = time.monotonic() - t0
        LOG.info('MobileSAM at %d px built in %.1f s (%s)', self.input_size,
                 self.build_seconds, source)
