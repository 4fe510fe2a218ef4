"""Robot-hand descriptions (joint names, limits, servo ids, named poses) as validated configs.

One YAML file per hand (see config/leap_16dof.yaml). Joint order is always resolved by name.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

DEFAULT_CONFIG = 'leap_16dof.yaml'


@dataclass
class HandConfig:
    """A hand: joints in servo order with limits (radians) and named poses."""

    name: str
    joint_names: List[str]
    servo_ids: List[int]
    lower: np.ndarray
    upper: np.ndarray
    named_poses: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.joint_names)
        if n == 0:
            raise ValueError(f'hand {self.name!r}: no joints')
        if len(set(self.joint_names)) != n:
            raise ValueError(f'hand {self.name!r}: duplicate joint names')
        if len(self.servo_ids) != n or len(set(self.servo_ids)) != n:
            raise ValueError(f'hand {self.name!r}: need one distinct servo id per joint')
        self.lower = np.asarray(self.lower, dtype=float)
        self.upper = np.asarray(self.upper, dtype=float)
        if self.lower.shape != (n,) or self.upper.shape != (n,):
            raise ValueError(f'hand {self.name!r}: need a lower and upper limit per joint')
        bad = [j for j, lo, hi in zip(self.joint_names, self.lower, self.upper) if not lo < hi]
        if bad:
            raise ValueError(f'hand {self.name!r}: lower >= upper for {", ".join(bad)}')
        for pose in ('open', 'closed'):
            if pose not in self.named_poses:
                raise ValueError(f'hand {self.name!r}: named pose {pose!r} is required')
        for pose, values in self.named_poses.items():
            values = np.asarray(values, dtype=float)
            # written so that NaN fails too
            if values.shape != (n,) or not np.all((values >= self.lower) & (values <= self.upper)):
                raise ValueError(
                    f'hand {self.name!r}: named pose {pose!r} outside the joint limits')
            self.named_poses[pose] = values
        self._index = {j: i for i, j in enumerate(self.joint_names)}

    @property
    def size(self) -> int:
        """Return the number of joints."""
        return len(self.joint_names)

    @staticmethod
    def from_dict(data: dict) -> 'HandConfig':
        """Build from the YAML layout: name, joints [{name, id, lower, upper}], named_poses."""
        try:
            joints = data['joints']
            names = [str(j['name']) for j in joints]
            config = dict(
                name=str(data.get('name', 'hand')), joint_names=names,
                servo_ids=[int(j['id']) for j in joints],
                lower=[float(j['lower']) for j in joints],
                upper=[float(j['upper']) for j in joints])
        except (KeyError, TypeError) as exc:
            raise ValueError(f'hand config: missing or malformed field {exc}') from exc
        poses = {}
        named_poses = data.get('named_poses') or {}
        if not isinstance(named_poses, dict):
            raise ValueError('hand config: named_poses must map pose names to {joint: angle}')
        for pose, values in named_poses.items():
            values = values or {}
            if not isinstance(values, dict):
                raise ValueError(
                    f'hand config: named pose {pose!r} must map joint names to angles')
            unknown = sorted(str(j) for j in set(values) - set(names))
            if unknown:
                raise ValueError(
                    f'hand config: named pose {pose!r} names unknown joints {unknown}')
            try:
                poses[pose] = [float(values.get(n, 0.0)) for n in names]
            except (TypeError, ValueError) as exc:
                raise ValueError(f'hand config: named pose {pose!r}: {exc}') from exc
        return HandConfig(named_poses=poses, **config)

    def index(self, name: str) -> int:
        """Return the position of a joint in this hand's order; ValueError for an unknown name."""
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f'unknown joint {name!r} for hand {self.name!r}') from None

    def pose(self, name: str) -> np.ndarray:
        """Return a copy of a named pose; ValueError naming the known poses otherwise."""
        if name not in self.named_poses:
            known = ', '.join(self.named_poses)
            raise ValueError(f'unknown named pose {name!r}; known: {known}')
        return self.named_poses[name].copy()

    def resolve(self, names: Sequence[str], positions: Sequence[float],
                base: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[str]]:
        """
        Map (names, positions) onto a full target vector in this hand's order.

        Joints not named keep `base` (default: the open pose). Values outside the limits are
        clamped; the clamped joint names are returned so the caller can warn.
        """
        if len(names) != len(positions):
            raise ValueError(f'{len(names)} joint names but {len(positions)} positions')
        targets = self.pose('open') if base is None else np.array(base, dtype=float)
        for name, value in zip(names, positions):
            if not math.isfinite(value):
                raise ValueError(f'joint {name!r}: target {value} is not finite')
            targets[self.index(name)] = value
        clamped = np.clip(targets, self.lower, self.upper)
        moved = [self.joint_names[i] for i in np.flatnonzero(clamped != targets)]
        return clamped, moved

    def closure(self, positions: Sequence[float]) -> float:
        """Return how closed the hand is: 0 open pose .. 1 closed pose, over the moving joints."""
        positions = np.asarray(positions, dtype=float)
        open_, closed = self.named_poses['open'], self.named_poses['closed']
        span = closed - open_
        moving = np.abs(span) > 1e-6
        frac = (positions[moving] - open_[moving]) / span[moving]
        return float(np.clip(np.mean(frac), 0.0, 1.0))


def default_config_path() -> Path:
    """Return the installed share/deft_hand_driver/config/leap_16dof.yaml."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('deft_hand_driver')) / 'config' / DEFAULT_CONFIG


def load_hand_config(path: str = '') -> HandConfig:
    """Load a hand config YAML ('' = the installed default); ValueError naming the file."""
    file = Path(path) if path else default_config_path()
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ValueError(f'cannot read hand config {file}: {exc.strerror}') from exc
    except yaml.YAMLError as exc:
        raise ValueError(f'hand config {file} is not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise ValueError(f'hand config {file}: expected a mapping at the top level')
    try:
        return HandConfig.from_dict(data)
    except ValueError as exc:
        raise ValueError(f'{file}: {exc}') from exc
