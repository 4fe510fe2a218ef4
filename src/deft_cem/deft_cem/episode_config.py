"""
The episode node's configuration from its parameters, without rclpy.

`load_episode_config` builds the grasp parameter space (the hand config and the residual bounds),
the initial residual std, the default post-grasp tau, the demonstrated tau per task and, when its
parameters are set, the embedding reward. Anything unusable is a ValueError (or OSError) whose
message names the parameter or file and why; the node turns it into a configuration error.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from deft_cem.episode import Demonstration, load_demonstrations, parse_demonstration
from deft_cem.grasp_params import ParameterSpace
from deft_hand_driver.hand_config import load_hand_config

DEMONSTRATIONS = 'demonstrations.yaml'  # installed in share/deft_cem/config


@dataclass
class EpisodeConfig:
    """What the episode node works with, built from its parameters."""

    space: ParameterSpace
    std0: np.ndarray
    tau: Demonstration  # of tasks without a demonstration
    demonstrations: Dict[str, Demonstration]  # task text -> tau
    demonstrations_file: Optional[Union[str, Path]]  # where those came from (None: none)
    embedding: Optional[object] = None  # EmbeddingReward (None: the embedding reward is off)
    std0_heuristic: Optional[np.ndarray] = None  # std0 of a run from the heuristic prior

    def initial_std(self, prior: str) -> np.ndarray:
        """Return the initial residual std of a run from `prior` (affordance or heuristic)."""
        if prior == 'heuristic' and self.std0_heuristic is not None:
            return self.std0_heuristic
        return self.std0

    @property
    def embedding_ready(self) -> bool:
        """Return True when the embedding reward has an encoder and a goal image."""
        return self.embedding is not None and self.embedding.has_goal


def demonstrations_file(value: str) -> Optional[Union[str, Path]]:
    """Return the demonstrations file of the parameter ('' = the installed one, 'none' = None)."""
    if value.strip().lower() == 'none':
        return None
    if not value:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('deft_cem')) / 'config' / DEMONSTRATIONS
    return value


def load_embedding(p):
    """Return the EmbeddingReward of the parameters (None when embedding_weights is empty)."""
    if not p.embedding_weights:
        return None
    from deft_affordance.embedding_reward import EmbeddingReward  # torch: only when used
    try:
        return EmbeddingReward.from_config(p.embedding_encoder, p.embedding_weights,
                                           p.embedding_goal_image or None,
                                           scale=p.embedding_scale)
    except (ValueError, OSError) as exc:
        raise ValueError(f'embedding reward: {exc}') from exc


def load_episode_config(p) -> EpisodeConfig:
    """Build the configuration from the node's parameters (`p`: values by name, see PARAMS)."""
    hand = load_hand_config(p.hand_config)
    space = ParameterSpace(hand.joint_names, hand.lower, hand.upper,
                           contact_offset_max=p.contact_offset_max,
                           wrist_residual_max=p.wrist_residual_max)
    turns = p.post_grasp_rotations if any(p.post_grasp_rotations) else []
    path = demonstrations_file(p.demonstrations)
    config = EpisodeConfig(
        space, space.default_std(p.contact_std, p.wrist_std, p.hand_std, p.tau_std),
        parse_demonstration(p.post_grasp_waypoints, turns),
        {} if path is None else load_demonstrations(path), path)
    config.std0_heuristic = space.default_std(p.contact_std, p.heuristic_wrist_std,
                                              p.heuristic_hand_std, p.tau_std)
    config.embedding = load_embedding(p)
    if p.default_reward_source == 'embedding' and not config.embedding_ready:
        raise ValueError('default_reward_source is embedding, but embedding_weights and '
                         'embedding_goal_image are not both set')
    return config
