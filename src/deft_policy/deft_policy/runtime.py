"""
The residual policy pi(I0, xi) at episode time: which checkpoint a goal uses, loaded once.

`policy_path` resolves the `policy_checkpoint` parameter against a goal's run_id; `PolicyCache`
loads a checkpoint on first use (again when the file changes) and refuses, with a ValueError
saying why, one that cannot serve the robot; `policy_residual` asks it for eps = pi(I0, xi);
`policy_summary` is the log line of a policy just loaded.
No rclpy here: the episode node turns the ValueErrors into BAD_GOAL / PERCEPTION_FAILED results.
"""

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from deft_common.runs import check_run_id


class MissingImage(ValueError):
    """The policy needs the initial image I0 and none came from the camera."""


def policy_path(checkpoint: str, run_root: Path, run_id: str) -> Optional[Path]:
    """
    Return the checkpoint mode policy uses for a goal's run_id (None: no such file).

    An absolute `checkpoint` is used as is; a relative one is a file in the run's directory
    (what deft_train_policy writes there), so it needs a valid run_id.
    """
    path = Path(checkpoint).expanduser()
    if not path.is_absolute():
        if not run_id:
            return None
        try:
            path = Path(run_root) / check_run_id(run_id) / path
        except ValueError:
            return None
    return path if path.is_file() else None


def check_feature_kind(path: Path, feature_kind: str) -> None:
    """Raise ValueError when a policy's features are not something the robot can give it."""
    if feature_kind == 'file':
        raise ValueError(f'residual policy {path} was trained on precomputed feature files; the '
                         'robot can only give it images (train with --features image or none)')


def _load_with_torch(path: Path, names: Sequence[str], resnet_weights: Optional[str]):
    from deft_policy.policy import load_policy  # torch: only when a policy is used

    return load_policy(path, list(names), resnet_weights)


class PolicyCache:
    """Residual policies by checkpoint path, reloaded when the file's mtime changes."""

    def __init__(self, parameter_names: Sequence[str], resnet_weights: str = '',
                 loader: Callable = _load_with_torch):
        self.names = list(parameter_names)
        self.resnet_weights = resnet_weights or None
        self.loader = loader
        self._policies: Dict[Path, Tuple[int, object]] = {}

    def get(self, path: Path) -> Tuple[object, bool]:
        """Return (policy, freshly loaded); ValueError saying why it cannot be used."""
        path = Path(path)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as exc:
            raise ValueError(f'residual policy checkpoint {path}: {exc}') from exc
        cached = self._policies.get(path)
        if cached and cached[0] == mtime:
            return cached[1], False
        try:
            policy = self.loader(path, self.names, self.resnet_weights)
        except (ValueError, OSError) as exc:
            raise ValueError(f'residual policy: {exc}') from exc
        check_feature_kind(path, policy.config.feature_kind)
        self._policies[path] = (mtime, policy)
        return policy, True


def policy_summary(path: Path, policy, sample: bool) -> str:
    """Return what the log says of a policy just loaded: its file, model, features and z."""
    return (f'residual policy {path}: {policy.config.model!r} on '
            f'{policy.config.feature_kind!r} features, z {"sampled" if sample else "= 0"}')


def policy_residual(policy, xi: Sequence[float], image: Optional[np.ndarray], sample: bool,
                    seed: Optional[int]) -> np.ndarray:
    """
    Return eps = pi(I0, xi) of a loaded policy.

    MissingImage when the policy reads images and `image` is None; ValueError from the policy
    (wrong sizes, non-finite output) with the reason.
    """
    if policy.config.feature_kind == 'image' and image is None:
        raise MissingImage('mode policy needs the initial image I0; nothing came on '
                           'camera/color/image_raw')
    use = image if policy.config.feature_kind == 'image' else None
    try:
        eps = policy.residual(np.asarray(xi, dtype=float), image=use, sample=sample, seed=seed)
    except ValueError as exc:
        raise ValueError(f'residual policy: {exc}') from exc
    eps = np.asarray(eps, dtype=float)
    if eps.shape != (len(xi),) or not np.all(np.isfinite(eps)):
        raise ValueError(f'residual policy: gave a residual of shape {eps.shape} with '
                         f'non-finite values or the wrong size (xi has {len(xi)} entries)')
    return eps
