"""
Segmenters behind perception/segment, chosen by the `backend` parameter.

`fake` lives here, `depth` in depth_backend, `sam` in sam_backend and `mobile_sam` in
mobile_sam_backend (both imported only when chosen; what they share is in sam_family); the
abstract Segmenter and SegmentationError in segmenter. All of them are importable from here.
"""

import numpy as np

from deft_perception.depth_backend import DepthPlaneSegmenter
from deft_perception.segmenter import SegmentationError, Segmenter

__all__ = ['BACKENDS', 'CenterRegionSegmenter', 'DepthPlaneSegmenter', 'SegmentationError',
           'Segmenter', 'TORCH_BACKENDS', 'make_segmenter']


class CenterRegionSegmenter(Segmenter):
    """
    Honest dry-run segmenter (`fake`): it does not look at the image.

    The mask is the centred rectangle covering `center_fraction` of each image side (centred on
    the point for a point prompt), or the box itself for a box prompt.
    """

    def __init__(self, center_fraction: float = 0.3):
        self.fraction = center_fraction

    def segment(self, rgb, depth, camera, prompt):
        """Return the rectangle."""
        h, w = depth.shape
        mask = np.zeros((h, w), bool)
        if prompt.kind == 'box':
            u0, v0, u1, v1 = (int(round(x)) for x in prompt.box)
            mask[v0:v1, u0:u1] = True
            return mask
        cu, cv = prompt.point if prompt.kind == 'point' else (w / 2.0, h / 2.0)
        hw, hh = self.fraction * w / 2.0, self.fraction * h / 2.0
        rows = slice(int(max(0, cv - hh)), int(min(h, cv + hh)))
        cols = slice(int(max(0, cu - hw)), int(min(w, cu + hw)))
        mask[rows, cols] = True
        return mask


BACKENDS = ('fake', 'depth', 'sam', 'mobile_sam')
TORCH_BACKENDS = ('sam', 'mobile_sam')
DEPTH_KEYS = ('min_height', 'max_height', 'min_area', 'iterations', 'inlier_distance', 'seed')


def make_segmenter(name: str, **params) -> Segmenter:
    """
    Build a segmenter by name; ValueError naming the choices or what is wrong.

    `sam` and `mobile_sam` are imported only when chosen (torch and the model packages load
    in seconds). Their parameters: sam_model_type, sam_checkpoint (sam), mobile_sam_checkpoint,
    mobile_sam_input_size (mobile_sam), sam_allow_random, device, clip_model, clip_weights;
    the depth parameters shape their salient-object proposals.
    """
    depth = {k: params[k] for k in DEPTH_KEYS if k in params}
    if name == 'fake':
        return CenterRegionSegmenter(params.get('center_fraction', 0.3))
    if name == 'depth':
        return DepthPlaneSegmenter(**depth)
    if name == 'sam':
        from deft_perception.sam_backend import SamSegmenter

        return SamSegmenter(
            model_type=params.get('sam_model_type', 'vit_b'),
            checkpoint=params.get('sam_checkpoint', ''),
            allow_random=params.get('sam_allow_random', False),
            device=params.get('device', 'cpu'), clip_model=params.get('clip_model', ''),
            clip_weights=params.get('clip_weights', ''), depth_params=depth)
    if name == 'mobile_sam':
        from deft_perception.mobile_sam_backend import DEFAULT_INPUT_SIZE, MobileSamSegmenter

        return MobileSamSegmenter(
            checkpoint=params.get('mobile_sam_checkpoint', ''),
            allow_random=params.get('sam_allow_random', False),
            device=params.get('device', 'cpu'),
            input_size=params.get('mobile_sam_input_size', DEFAULT_INPUT_SIZE),
            clip_model=params.get('clip_model', ''),
            clip_weights=params.get('clip_weights', ''), depth_params=depth)
    raise ValueError(f'unknown segmentation backend {name!r}; available: {", ".join(BACKENDS)}')
