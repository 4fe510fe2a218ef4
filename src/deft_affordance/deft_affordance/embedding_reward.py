"""The embedding reward: how close the episode's final image is to a goal image under an encoder.

DEFT scores an episode without an operator by the negative L2 distance, in an image encoder's
embedding space (deft_affordance.encoders), between the camera image at the end of the episode
and a goal image.

The reward is ``exp(-d / scale)`` for the embedding distance ``d >= 0``: 1.0 for the goal image
itself, strictly decreasing in ``d``, in (0, 1]. ``scale`` is the distance that maps to
``exp(-1) ~ 0.37``; pick it near the distances seen between a failed and a successful final
image (they depend on the encoder and its weights). The map preserves the order of episodes,
but it saturates to 0.0 in float64 far beyond ``scale`` (``d > ~700 * scale``), so anything that
ranks episodes may use the raw negative distance, also returned (:meth:`EmbeddingReward.score`).
"""

from dataclasses import dataclass
import math
import os
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from deft_affordance.encoders import build_encoder, check_image, preprocess, read_image
from deft_common.torch_device import torch_device

ImageLike = Union[np.ndarray, str, os.PathLike]


@dataclass(frozen=True)
class EmbeddingScore:
    """One final image compared with the goal: the reward and the raw distance it comes from."""

    reward: float
    distance: float

    @property
    def negative_distance(self) -> float:
        """Return the paper's reward, -distance (0 at best, unbounded below)."""
        return -self.distance


def reward_from_distance(distance: float, scale: float) -> float:
    """Map an embedding distance d >= 0 to exp(-d / scale) in (0, 1], strictly decreasing in d."""
    if not math.isfinite(distance) or distance < 0.0:
        raise ValueError(f'distance must be finite and >= 0, got {distance}')
    return math.exp(-distance / scale)





def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
            or not math.isfinite(scale) or scale <= 0.0:
        raise ValueError(f'scale must be a finite number > 0, got {scale!r}')
    return float(scale)


class EmbeddingReward:
    """Reward of a final image: closeness of its embedding to the goal image's embedding."""

    def __init__(self, model: nn.Module, scale: float, device: str = 'cpu',
                 name: str = 'encoder'):
        """Wrap an image -> feature-vector `model`; see `from_config` to build one from a file."""
        self.scale = _check_scale(scale)
        self.device = torch_device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self._goal: Optional[torch.Tensor] = None

    @classmethod
    def from_config(cls, encoder: str, weights_path: str, goal_image_path: Optional[str] = None,
                    device: str = 'cpu', *, scale: float,
                    allow_random: bool = False) -> 'EmbeddingReward':
        """Build from parameter values; an empty or None goal path leaves the goal unset.

        Raises ValueError, with a message a person can act on, for an unknown encoder, a
        missing/unsafe/mismatched weights file, an unreadable goal image or a bad scale/device.
        """
        _check_scale(scale)  # the cheap checks first, before reading any weights
        torch_device(device)
        goal = read_image(goal_image_path) if goal_image_path else None
        model = build_encoder(encoder, weights_path, allow_random)
        name = encoder if weights_path else f'{encoder} (random weights)'
        reward = cls(model, scale, device, name)
        if goal is not None:
            reward.set_goal(goal)
        return reward

    @property
    def has_goal(self) -> bool:
        """Return True once a goal image is set."""
        return self._goal is not None

    @torch.inference_mode()
    def _embed(self, image: np.ndarray) -> torch.Tensor:
        x = preprocess(image).to(self.device)
        return self.model(x).reshape(-1).to('cpu', torch.float64)

    def embed(self, image: np.ndarray) -> np.ndarray:
        """Return the embedding (1-D float array) of an (H, W, 3) uint8 RGB image."""
        return self._embed(image).numpy()

    def set_goal(self, image: ImageLike) -> None:
        """Set the goal from an (H, W, 3) uint8 RGB array or the path of an image file."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        else:
            check_image(image, 'goal image')
        self._goal = self._embed(image)

    def distance(self, final_image: np.ndarray) -> float:
        """Return the L2 distance between the embeddings of `final_image` and of the goal."""
        if self._goal is None:
            raise RuntimeError('no goal image set: call set_goal() or give goal_image_path')
        check_image(final_image, 'final image')
        return float(torch.linalg.vector_norm(self._embed(final_image) - self._goal))

    def score(self, final_image: np.ndarray) -> EmbeddingScore:
        """Return the reward in [0, 1] and the raw distance of `final_image` to the goal."""
        d = self.distance(final_image)
        return EmbeddingScore(reward=reward_from_distance(d, self.scale), distance=d)

    def reward(self, final_image: np.ndarray) -> float:
        """Return exp(-distance / scale) in [0, 1]: 1.0 for the goal image itself."""
        return self.score(final_image).reward

    def negative_distance(self, final_image: np.ndarray) -> float:
        """Return -distance, the paper's unbounded reward (0 for the goal image itself)."""
        return -self.distance(final_image)
