"""
The segmentation boundary: the abstract Segmenter and the SegmentationError it raises.

Every segmenter module imports this one; the factory (`deft_perception.segmentation`) imports
the segmenters, so no segmenter imports the factory back.
"""

from abc import ABC, abstractmethod

import numpy as np

from deft_perception.geometry import CameraModel
from deft_perception.prompts import Prompt


class SegmentationError(ValueError):
    """Nothing could be segmented for the prompt; the message says why."""


class Segmenter(ABC):
    """Image + depth + prompt -> boolean object mask."""

    @abstractmethod
    def segment(self, rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
                prompt: Prompt) -> np.ndarray:
        """Return the object mask (H x W bool); raise SegmentationError if none."""
