"""
The robot hand's kinematics for retargeting: serial finger chains, forward kinematics, Jacobians.

Pure module (no rclpy). The `kinematics` section of a retargeting YAML (see
deft_hand_driver.retargeting_config) describes each finger as a serial chain in the robot's palm
frame (metres, radians): `base` position and optional `base_rpy`; per joint its `name` (a hand
config joint), `origin` offset from the previous joint's frame, optional fixed `rpy` (URDF
roll-pitch-yaw), and rotation `axis` (in the joint's frame, URDF-like); `tip` offset from the
last joint. Robot keypoints are 'palm' (the frame origin), every joint's position (by joint name)
and '<finger>_tip'.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_common import rotations


def check_fields(data, where: str, allowed: Sequence[str]) -> dict:
    """Return `data` if it is a mapping with only `allowed` keys; ValueError naming `where`."""
    if not isinstance(data, dict):
        raise ValueError(f'{where}: expected a mapping, got {data!r}')
    unknown = sorted(set(map(str, data)) - set(allowed))
    if unknown:
        raise ValueError(f'{where}: unknown field(s) {unknown}; known: {", ".join(allowed)}')
    return data


def _vec3(value, where: str, unit: bool = False) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f'{where}: expected 3 numbers, got {value!r}') from None
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f'{where}: expected 3 finite numbers, got {value!r}')
    if unit:
        norm = np.linalg.norm(v)
        if norm < 1e-9:
            raise ValueError(f'{where}: axis must not be zero')
        v = v / norm
    return v


@dataclass
class JointSpec:
    """One revolute joint of a finger chain."""

    name: str
    axis: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rpy: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass
class FingerChain:
    """A finger: base pose in the palm frame, joints from the palm outwards, tip offset."""

    name: str
    base: np.ndarray
    joints: List[JointSpec]
    tip: np.ndarray
    base_rpy: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self):
        if not self.joints:
            raise ValueError(f'kinematics.fingers.{self.name}.joints: no joints')


@dataclass
class HandKinematics:
    """The robot hand as serial finger chains (the `kinematics` section)."""

    fingers: Dict[str, FingerChain]

    def __post_init__(self):
        if not self.fingers:
            raise ValueError('kinematics.fingers: no fingers')
        names = [j.name for f in self.fingers.values() for j in f.joints]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f'kinematics: joint(s) {dup} appear more than once')

    @property
    def joint_names(self) -> List[str]:
        """Return the joints of all chains, finger by finger."""
        return [j.name for f in self.fingers.values() for j in f.joints]

    @property
    def keypoint_names(self) -> List[str]:
        """Return the robot keypoints: 'palm', every joint, '<finger>_tip'."""
        return ['palm'] + self.joint_names + [f'{f}_tip' for f in self.fingers]

    def finger_of(self, joint: str) -> str:
        """Return the finger whose chain holds a joint."""
        for f, chain in self.fingers.items():
            if joint in [j.name for j in chain.joints]:
                return f
        raise ValueError(f'joint {joint!r} is in no kinematic chain')

    @staticmethod
    def from_dict(data) -> 'HandKinematics':
        """Build from the YAML layout; ValueError naming the field (kinematics.fingers...)."""
        check_fields(data, 'kinematics', ('fingers',))
        fingers_raw = data.get('fingers')
        if not isinstance(fingers_raw, dict) or not fingers_raw:
            raise ValueError('kinematics.fingers: expected a mapping finger -> chain')
        fingers = {}
        for fname, raw in fingers_raw.items():
            where = f'kinematics.fingers.{fname}'
            check_fields(raw, where, ('base', 'base_rpy', 'joints', 'tip'))
            joints_raw = raw.get('joints')
            if not isinstance(joints_raw, list):
                raise ValueError(f'{where}.joints: expected a list of joints')
            joints = []
            for k, j in enumerate(joints_raw):
                jw = f'{where}.joints[{k}]'
                check_fields(j, jw, ('name', 'axis', 'origin', 'rpy'))
                if 'name' not in j:
                    raise ValueError(f'{jw}.name: required')
                if 'axis' not in j:
                    raise ValueError(f'{jw}.axis: required')
                joints.append(JointSpec(
                    name=str(j['name']), axis=_vec3(j['axis'], f'{jw}.axis', unit=True),
                    origin=_vec3(j.get('origin', (0, 0, 0)), f'{jw}.origin'),
                    rpy=_vec3(j.get('rpy', (0, 0, 0)), f'{jw}.rpy')))
            if 'base' not in raw:
                raise ValueError(f'{where}.base: required')
            if 'tip' not in raw:
                raise ValueError(f'{where}.tip: required')
            fingers[str(fname)] = FingerChain(
                name=str(fname), base=_vec3(raw['base'], f'{where}.base'), joints=joints,
                tip=_vec3(raw['tip'], f'{where}.tip'),
                base_rpy=_vec3(raw.get('base_rpy', (0, 0, 0)), f'{where}.base_rpy'))
        return HandKinematics(fingers)


class KinematicModel:
    """Forward kinematics and keypoint Jacobians of HandKinematics, in a hand config's order."""

    def __init__(self, kinematics: HandKinematics, joint_names: Sequence[str]):
        order = {n: i for i, n in enumerate(joint_names)}
        missing = sorted(set(order) - set(kinematics.joint_names))
        extra = sorted(set(kinematics.joint_names) - set(order))
        if missing or extra:
            raise ValueError(f'kinematics: chains must hold exactly the hand joints; '
                             f'not described: {missing}, unknown: {extra}')
        self.kinematics = kinematics
        self.size = len(joint_names)
        self.keypoint_names = kinematics.keypoint_names
        self._kp = {n: i for i, n in enumerate(self.keypoint_names)}
        self._axes = np.zeros((self.size, 3))  # each joint's axis in its own frame
        self._chains = []
        for f, chain in kinematics.fingers.items():
            for j in chain.joints:
                self._axes[order[j.name]] = j.axis
            self._chains.append((
                chain, rotations.rpy_to_matrix(chain.base_rpy),
                [(order[j.name], self._kp[j.name], j,
                  rotations.rpy_to_matrix(j.rpy) if np.any(j.rpy) else None)
                 for j in chain.joints],
                self._kp[f'{f}_tip']))
        # _moves[k, i]: joint i lies before keypoint k in k's chain
        self._moves = np.zeros((len(self.keypoint_names), self.size))
        for _, _, joints, tip_row in self._chains:
            for n, (_, row, _, _) in enumerate(joints):
                self._moves[row, [qi for qi, *_ in joints[:n]]] = 1.0
            self._moves[tip_row, [qi for qi, *_ in joints]] = 1.0

    def keypoint(self, name: str) -> int:
        """Return the row of a robot keypoint; ValueError listing the known ones."""
        try:
            return self._kp[name]
        except KeyError:
            raise ValueError(f'unknown robot keypoint {name!r}; known: '
                             f'{", ".join(self.keypoint_names)}') from None

    def forward(self, q: Sequence[float],
                jacobian: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Return keypoints (K, 3) in the palm frame and, if asked, d keypoints / dq (K, 3, n)."""
        q = np.asarray(q, dtype=float)
        turns = rotations.rotvec_to_matrix(self._axes * q[:, None])  # joint i about its axis
        points = np.zeros((len(self.keypoint_names), 3))
        axes = np.zeros((self.size, 3))
        origins = np.zeros((self.size, 3))
        for chain, base_rot, joints, tip_row in self._chains:
            pos, rot = chain.base, base_rot
            for qi, row, spec, fixed in joints:
                pos = pos + rot @ spec.origin
                if fixed is not None:
                    rot = rot @ fixed
                points[row] = pos
                origins[qi], axes[qi] = pos, rot @ spec.axis
                rot = rot @ turns[qi]
            points[tip_row] = pos + rot @ chain.tip
        if not jacobian:
            return points, None
        # a revolute joint moves a keypoint p of its chain beyond it by axis x (p - joint)
        lever = points[:, None, :] - origins[None, :, :]
        jac = np.cross(np.broadcast_to(axes, lever.shape), lever) * self._moves[:, :, None]
        return points, jac.transpose(0, 2, 1)
