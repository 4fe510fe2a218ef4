"""Robot-hand descriptions (joint names, limits, servo ids, named poses) as validated configs.

One YAML file per hand (see config/leap_16dof.yaml). Joint order is always resolved by name.
Per joint, optional calibration for the servo backend: `zero_ticks`, the servo position (ticks,
0..4095) at joint angle 0 (default 2048, the horn centred), and `direction`, +1 when the angle
grows with the ticks, -1 when against (a servo mounted the other way round).
"""

from dataclasses import dataclass, field, replace
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

DEFAULT_CONFIG = 'leap_16dof.yaml'
CENTRE_TICKS = 2048
TICKS_PER_TURN = 4096


@dataclass
class HandConfig:
    """A hand: joints in servo order with limits (radians) and named poses."""

    name: str
    joint_names: List[str]
    servo_ids: List[int]
    lower: np.ndarray
    upper: np.ndarray
    named_poses: Dict[str, np.ndarray] = field(default_factory=dict)
    zero_ticks: Optional[Sequence[int]] = None  # None = CENTRE_TICKS for every joint
    direction: Optional[Sequence[int]] = None   # None = +1 for every joint

    def __post_init__(self):
        n = len(self.joint_names)
        if n == 0:
            raise ValueError(f'hand {self.name!r}: no joints')
        if len(set(self.joint_names)) != n:
            raise ValueError(f'hand {self.name!r}: duplicate joint names')
        if len(self.servo_ids) != n or len(set(self.servo_ids)) != n:
            raise ValueError(f'hand {self.name!r}: need one distinct servo id per joint, got '
                             f'{len(self.servo_ids)} ids ({len(set(self.servo_ids))} distinct) '
                             f'for {n} joints')
        bad = [j for j, i in zip(self.joint_names, self.servo_ids)
               if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < 253]
        if bad:
            raise ValueError(f'hand {self.name!r}: servo ids must be integers 0..252 '
                             f'(bad for {", ".join(bad)})')
        self.servo_ids = [int(i) for i in self.servo_ids]
        zero = [CENTRE_TICKS] * n if self.zero_ticks is None else list(self.zero_ticks)
        sign = [1] * n if self.direction is None else list(self.direction)
        if len(zero) != n or len(sign) != n:
            raise ValueError(f'hand {self.name!r}: need one zero_ticks and one direction per '
                             f'joint, got {len(zero)} and {len(sign)} for {n} joints')
        bad = [j for j, z in zip(self.joint_names, zero)
               if isinstance(z, bool) or not isinstance(z, (int, np.integer))
               or not 0 <= z < TICKS_PER_TURN]
        if bad:
            raise ValueError(f'hand {self.name!r}: zero_ticks must be an integer in '
                             f'0..{TICKS_PER_TURN - 1} (bad for {", ".join(bad)})')
        bad = [j for j, d in zip(self.joint_names, sign)
               if isinstance(d, bool) or d not in (1, -1)]
        if bad:
            raise ValueError(f'hand {self.name!r}: direction must be 1 or -1 '
                             f'(bad for {", ".join(bad)})')
        self.zero_ticks = [int(z) for z in zero]
        self.direction = [int(d) for d in sign]
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
                servo_ids=[_integer(j['id'], j['name'], 'id') for j in joints],
                lower=[float(j['lower']) for j in joints],
                upper=[float(j['upper']) for j in joints],
                zero_ticks=[_integer(j.get('zero_ticks', CENTRE_TICKS), j['name'], 'zero_ticks')
                            for j in joints],
                direction=[_integer(j.get('direction', 1), j['name'], 'direction')
                           for j in joints])
        except (KeyError, TypeError, AttributeError) as exc:
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

    def with_servo_ids(self, servo_ids: Sequence[int]) -> 'HandConfig':
        """Return a copy driven by other servo ids (joint order); ValueError if they do not fit."""
        if len(servo_ids) != self.size:
            raise ValueError(f'servo_ids: {len(servo_ids)} ids given, hand {self.name!r} has '
                             f'{self.size} joints ({", ".join(self.joint_names)})')
        return replace(self, servo_ids=list(servo_ids),
                       named_poses={k: v.copy() for k, v in self.named_poses.items()})

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


def _integer(value, joint, key: str) -> int:
    """Return an integer field of a joint; ValueError naming it (1.5, 'x' and true are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f'hand config: joint {joint!r}: {key} must be an integer, got {value!r}')
    return int(value)


def parse_servo_ids(text: str) -> List[int]:
    """Parse a servo id list '1,0,2,3' (or '0..15', '1,0,2..15'); ValueError saying why not."""
    ids: List[int] = []
    try:
        for part in text.replace(' ', '').split(','):
            if '..' in part:
                low, high = part.split('..')
                ids.extend(range(int(low), int(high) + 1))
            elif part:
                ids.append(int(part))
    except ValueError:
        raise ValueError(f'servo_ids {text!r}: expected integers separated by commas, '
                         'e.g. "1,0,2,3" or "0..15"') from None
    return ids


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
