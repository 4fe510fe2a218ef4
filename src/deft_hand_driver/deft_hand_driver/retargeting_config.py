"""
Retargeting configs: the `retargeting` and `kinematics` sections of a retargeting YAML, validated.

A retargeting YAML is a full hand config (deft_hand_driver.hand_config) plus a `kinematics`
section (the finger chains, see deft_hand_driver.kinematics) and a `retargeting` section: the
`method` (`direct` or `vector`, see deft_hand_driver.retargeting), `finger_mapping` (MANO finger ->
robot finger), the method's table (`direct`: per robot joint a MANO joint 1..3, an anatomical
angle, scale and offset; `vectors`: robot and MANO keypoint pairs with weights), and
`human_to_robot`, `scaling`, `smoothing_alpha`, `regularisation`, `max_iterations`. One YAML per
hand (config/*_retargeting.yaml); every error is a ValueError naming the file and the field.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import yaml

from deft_hand_driver import mano
from deft_hand_driver.hand_config import HandConfig
from deft_hand_driver.kinematics import HandKinematics, KinematicModel, check_fields

METHODS = ('direct', 'vector')
SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # libyaml when available


def _number(data: dict, key: str, where: str, default: Optional[float] = None) -> float:
    value = data.get(key, default)
    if value is None:
        raise ValueError(f'{where}.{key}: required')
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{where}.{key}: expected a number, got {value!r}') from None
    if not math.isfinite(value):
        raise ValueError(f'{where}.{key}: {value} is not finite')
    return value


@dataclass
class DirectJoint:
    """A robot joint = scale * (angle of MANO joint `joint` of the mapped finger) + offset."""

    joint: int
    angle: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class VectorPair:
    """A robot vector (origin -> task keypoint) that should match a scaled MANO vector."""

    robot: Tuple[str, str]
    human: Tuple[str, str]
    weight: float = 1.0


@dataclass
class RetargetingConfig:
    """The `retargeting` (and `kinematics`) sections of a retargeting YAML, validated."""

    method: str
    kinematics: HandKinematics
    finger_mapping: Dict[str, str]  # MANO finger -> robot finger
    human_to_robot: np.ndarray = field(default_factory=lambda: np.eye(3))
    scaling: float = 1.0
    direct: Dict[str, DirectJoint] = field(default_factory=dict)
    vectors: List[VectorPair] = field(default_factory=list)
    smoothing_alpha: float = 1.0
    regularisation: float = 1e-5
    max_iterations: int = 100

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f'retargeting.method: {self.method!r} is not one of '
                             f'{", ".join(METHODS)}')
        for human, robot in self.finger_mapping.items():
            if human not in mano.FINGERS:
                raise ValueError(f'retargeting.finger_mapping: {human!r} is not a MANO finger '
                                 f'({", ".join(mano.FINGERS)})')
            if robot not in self.kinematics.fingers:
                raise ValueError(f'retargeting.finger_mapping.{human}: {robot!r} is not a '
                                 f'robot finger ({", ".join(self.kinematics.fingers)})')
        robots = list(self.finger_mapping.values())
        if len(set(robots)) != len(robots):
            raise ValueError('retargeting.finger_mapping: a robot finger is mapped twice')
        m = np.asarray(self.human_to_robot, dtype=float)
        if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-6):
            raise ValueError('retargeting.human_to_robot: expected an orthonormal 3x3 matrix')
        self.human_to_robot = m
        if not (self.scaling > 0 and math.isfinite(self.scaling)):
            raise ValueError(f'retargeting.scaling: {self.scaling} must be > 0')
        if not 0 < self.smoothing_alpha <= 1:
            raise ValueError(f'retargeting.smoothing_alpha: {self.smoothing_alpha} must be in '
                             f'(0, 1] (1 = no smoothing)')
        if not self.regularisation >= 0:
            raise ValueError(f'retargeting.regularisation: {self.regularisation} must be >= 0')
        if self.max_iterations < 1:
            raise ValueError('retargeting.max_iterations: must be >= 1')
        joints = set(self.kinematics.joint_names)
        for name, d in self.direct.items():
            where = f'retargeting.direct.{name}'
            if name not in joints:
                raise ValueError(f'{where}: {name!r} is not a joint of the kinematics')
            if d.joint not in (1, 2, 3):
                raise ValueError(f'{where}.joint: {d.joint!r} must be 1, 2 or 3')
            if d.angle not in mano.ANGLES:
                raise ValueError(f'{where}.angle: {d.angle!r} is not one of '
                                 f'{", ".join(mano.ANGLES)}')
            if self.kinematics.finger_of(name) not in robots:
                raise ValueError(f'{where}: finger {self.kinematics.finger_of(name)!r} has no '
                                 f'MANO finger in retargeting.finger_mapping')
        robot_kp = set(self.kinematics.keypoint_names)
        for k, v in enumerate(self.vectors):
            where = f'retargeting.vectors[{k}]'
            for name in v.robot:
                if name not in robot_kp:
                    raise ValueError(f'{where}.robot: unknown robot keypoint {name!r}')
            for name in v.human:
                if name not in mano.KEYPOINT_NAMES:
                    raise ValueError(f'{where}.human: unknown MANO keypoint {name!r}')
            if not v.weight > 0:
                raise ValueError(f'{where}.weight: {v.weight} must be > 0')
        if self.method == 'direct':
            missing = sorted(joints - set(self.direct))
            if missing:
                raise ValueError(f'retargeting.direct: no entry for joint(s) {missing}')
        if self.method == 'vector' and not self.vectors:
            raise ValueError('retargeting.vectors: the vector method needs vector pairs')

    @staticmethod
    def from_dict(retargeting, kinematics) -> 'RetargetingConfig':
        """Build from the `retargeting` and `kinematics` sections of the YAML."""
        if kinematics is None:
            raise ValueError('kinematics: section required')
        kin = HandKinematics.from_dict(kinematics)
        allowed = ('method', 'finger_mapping', 'human_to_robot', 'scaling', 'direct',
                   'vectors', 'smoothing_alpha', 'regularisation', 'max_iterations')
        data = check_fields(retargeting, 'retargeting', allowed)
        mapping = data.get('finger_mapping')
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError('retargeting.finger_mapping: expected a mapping MANO finger -> '
                             'robot finger')
        direct = {}
        raw_direct = data.get('direct') or {}
        if not isinstance(raw_direct, dict):
            raise ValueError('retargeting.direct: expected a mapping joint -> {joint, angle}')
        for name, d in raw_direct.items():
            where = f'retargeting.direct.{name}'
            check_fields(d, where, ('joint', 'angle', 'scale', 'offset'))
            if 'joint' not in d or 'angle' not in d:
                raise ValueError(f'{where}: needs joint (1..3) and angle (flex, abd, twist)')
            direct[str(name)] = DirectJoint(
                joint=d['joint'], angle=str(d['angle']),
                scale=_number(d, 'scale', where, 1.0), offset=_number(d, 'offset', where, 0.0))
        vectors = []
        raw_vectors = data.get('vectors') or []
        if not isinstance(raw_vectors, list):
            raise ValueError('retargeting.vectors: expected a list of {robot, human, weight}')
        for k, v in enumerate(raw_vectors):
            where = f'retargeting.vectors[{k}]'
            check_fields(v, where, ('robot', 'human', 'weight'))
            for side in ('robot', 'human'):
                pair = v.get(side)
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError(f'{where}.{side}: expected [origin, task] keypoint names')
            vectors.append(VectorPair(tuple(map(str, v['robot'])), tuple(map(str, v['human'])),
                                      _number(v, 'weight', where, 1.0)))
        try:
            matrix = np.asarray(data.get('human_to_robot', np.eye(3)), dtype=float)
        except (TypeError, ValueError):
            raise ValueError('retargeting.human_to_robot: expected a 3x3 matrix') from None
        return RetargetingConfig(
            method=str(data.get('method')), kinematics=kin,
            finger_mapping={str(k): str(v) for k, v in mapping.items()},
            human_to_robot=matrix, scaling=_number(data, 'scaling', 'retargeting', 1.0),
            direct=direct, vectors=vectors,
            smoothing_alpha=_number(data, 'smoothing_alpha', 'retargeting', 1.0),
            regularisation=_number(data, 'regularisation', 'retargeting', 1e-5),
            max_iterations=int(_number(data, 'max_iterations', 'retargeting', 100)))


def load_retargeting_config(path: str) -> Tuple[HandConfig, RetargetingConfig]:
    """
    Load a retargeting YAML: a full hand config plus `kinematics` and `retargeting` sections.

    ValueError naming the file and the field.
    """
    file = Path(path)
    try:
        data = yaml.load(file.read_text(), Loader=SAFE_LOADER)
    except OSError as exc:
        raise ValueError(f'cannot read retargeting config {file}: {exc.strerror}') from exc
    except yaml.YAMLError as exc:
        raise ValueError(f'retargeting config {file} is not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise ValueError(f'{file}: expected a mapping at the top level')
    try:
        hand = HandConfig.from_dict(data)
        if data.get('kinematics') is None:
            raise ValueError('kinematics: section required')
        # first: the chains hold exactly the hand's joints
        KinematicModel(HandKinematics.from_dict(data['kinematics']), hand.joint_names)
        if 'retargeting' not in data:
            raise ValueError('retargeting: section required')
        config = RetargetingConfig.from_dict(data['retargeting'], data['kinematics'])
    except ValueError as exc:
        raise ValueError(f'{file}: {exc}') from exc
    return hand, config
