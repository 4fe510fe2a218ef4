"""
Retargeting: a MANO hand pose -> robot joint angles, by config (pure module, no rclpy).

Two methods, chosen by the `retargeting.method` of a retargeting YAML: a hand config with
`kinematics` and `retargeting` sections (config/leap_16dof_retargeting.yaml,
config/sim_16dof_retargeting.yaml):

* `direct`: an anatomical mapping. Each robot joint takes one anatomical angle (flex, abd or
  twist, see `ManoModel.anatomical_angles`) of joint 1, 2 or 3 of the MANO finger mapped to its
  robot finger, times a per-joint scale plus an offset.
* `vector`: the vector retargeting known from dex-retargeting. Vectors between MANO keypoints
  (in the canonical hand frame of deft_hand_driver.mano, scaled by `scaling`, rotated by
  `human_to_robot`) are matched by the same vectors between robot keypoints (the hand's forward
  kinematics from the `kinematics` section): a bounded Levenberg-Marquardt least squares over all
  joints, bounds = the hand config's limits, warm-started from and regularised towards the
  previous solution.

Both clip to the limits and low-pass the output, q <- alpha q_new + (1 - alpha) q_prev
(`smoothing_alpha`, 1 = off). Results are always in the hand config's joint order (by name).
A retargeter is stateful for streams of poses; for unrelated poses (one per grasp) call
`reset()` first, and the vector method then tries every named pose as a start and keeps the
best fit.

The kinematics section describes each finger as a serial chain in the robot's palm frame
(metres, radians): `base` position and optional `base_rpy`; per joint its `name` (a hand config
joint), `origin` offset from the previous joint's frame, optional fixed `rpy`, and rotation
`axis` (in the joint's frame, URDF-like); `tip` offset from the last joint. Robot keypoints are
'palm' (the frame origin), every joint's position (by joint name) and '<finger>_tip'.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from deft_hand_driver import mano
from deft_hand_driver.hand_config import HandConfig

METHODS = ('direct', 'vector')
SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # libyaml when available
EXACT_FIT = 1e-8  # m^2: a first fit this good needs no further starting poses


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


def rpy_matrix(rpy: Sequence[float]) -> np.ndarray:
    """Return the rotation of URDF roll-pitch-yaw angles (Rz(yaw) Ry(pitch) Rx(roll))."""
    r, p, y = rpy
    return mano._rz(y) @ mano._ry(p) @ mano._rx(r)


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotate about a unit axis (Rodrigues, scalar fast path)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    t = 1 - c
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


def _fields(data, where: str, allowed: Sequence[str]) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f'{where}: expected a mapping, got {data!r}')
    unknown = sorted(set(map(str, data)) - set(allowed))
    if unknown:
        raise ValueError(f'{where}: unknown field(s) {unknown}; known: {", ".join(allowed)}')
    return data


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
        _fields(data, 'kinematics', ('fingers',))
        fingers_raw = data.get('fingers')
        if not isinstance(fingers_raw, dict) or not fingers_raw:
            raise ValueError('kinematics.fingers: expected a mapping finger -> chain')
        fingers = {}
        for fname, raw in fingers_raw.items():
            where = f'kinematics.fingers.{fname}'
            _fields(raw, where, ('base', 'base_rpy', 'joints', 'tip'))
            joints_raw = raw.get('joints')
            if not isinstance(joints_raw, list):
                raise ValueError(f'{where}.joints: expected a list of joints')
            joints = []
            for k, j in enumerate(joints_raw):
                jw = f'{where}.joints[{k}]'
                _fields(j, jw, ('name', 'axis', 'origin', 'rpy'))
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
        self._chains = []
        for f, chain in kinematics.fingers.items():
            self._chains.append((
                chain, rpy_matrix(chain.base_rpy),
                [(order[j.name], self._kp[j.name], j,
                  rpy_matrix(j.rpy) if np.any(j.rpy) else None) for j in chain.joints],
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
                rot = rot @ _axis_rotation(spec.axis, q[qi])
            points[tip_row] = pos + rot @ chain.tip
        if not jacobian:
            return points, None
        # a revolute joint moves a keypoint p of its chain beyond it by axis x (p - joint)
        lever = points[:, None, :] - origins[None, :, :]
        jac = np.cross(np.broadcast_to(axes, lever.shape), lever) * self._moves[:, :, None]
        return points, jac.transpose(0, 2, 1)


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
        data = _fields(retargeting, 'retargeting', allowed)
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
            _fields(d, where, ('joint', 'angle', 'scale', 'offset'))
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
            _fields(v, where, ('robot', 'human', 'weight'))
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


class Retargeter:
    """Common part: MANO model, hand order, limits, smoothing; results in hand joint order."""

    def __init__(self, hand: HandConfig, config: RetargetingConfig,
                 mano_model: Optional[mano.ManoModel] = None):
        self.hand = hand
        self.config = config
        self.mano = mano_model or mano.ManoModel()
        self.joint_names = list(hand.joint_names)
        self.lower, self.upper = hand.lower.copy(), hand.upper.copy()
        self.model = KinematicModel(config.kinematics, self.joint_names)
        self.reset()

    def reset(self):
        """Forget the previous output (smoothing state and warm start)."""
        self.last: Optional[np.ndarray] = None

    def retarget(self, pose: Sequence[float],
                 global_orient: Optional[Sequence[float]] = None) -> np.ndarray:
        """Return joint angles (hand config order) for a MANO pose (45 axis-angle values)."""
        raise NotImplementedError

    def retarget_named(self, pose: Sequence[float],
                       global_orient: Optional[Sequence[float]] = None) -> Dict[str, float]:
        """Return {joint name: angle} for a MANO pose."""
        return dict(zip(self.joint_names, self.retarget(pose, global_orient).tolist()))

    def _output(self, q: np.ndarray) -> np.ndarray:
        q = np.clip(q, self.lower, self.upper)
        if self.last is not None:
            a = self.config.smoothing_alpha
            q = np.clip(a * q + (1 - a) * self.last, self.lower, self.upper)
        self.last = q
        return q.copy()


class DirectRetargeter(Retargeter):
    """Anatomical mapping: each robot joint from one flex/abd/twist angle, scaled and offset."""

    def __init__(self, hand: HandConfig, config: RetargetingConfig,
                 mano_model: Optional[mano.ManoModel] = None):
        super().__init__(hand, config, mano_model)
        to_human = {robot: human for human, robot in config.finger_mapping.items()}
        self._table = []
        for name, d in config.direct.items():
            finger = to_human[config.kinematics.finger_of(name)]
            self._table.append((hand.index(name),
                                mano.POSE_JOINTS.index(f'{finger}{d.joint}'),
                                mano.ANGLES.index(d.angle), d.scale, d.offset))

    def retarget_angles(self, angles: np.ndarray) -> np.ndarray:
        """Return joint angles for anatomical angles (15, 3) as ManoModel.anatomical_angles."""
        q = self.hand.pose('open')
        for i, k, c, scale, offset in self._table:
            q[i] = scale * angles[k, c] + offset
        return self._output(q)

    def retarget(self, pose, global_orient=None) -> np.ndarray:
        """Return joint angles (hand config order) for a MANO pose; the wrist is ignored."""
        return self.retarget_angles(self.mano.anatomical_angles(pose))


class VectorRetargeter(Retargeter):
    """Vector retargeting: bounded least squares on keypoint vectors, warm started, smoothed."""

    def __init__(self, hand: HandConfig, config: RetargetingConfig,
                 mano_model: Optional[mano.ManoModel] = None):
        super().__init__(hand, config, mano_model)
        pairs = config.vectors
        self._r_origin = np.array([self.model.keypoint(v.robot[0]) for v in pairs])
        self._r_task = np.array([self.model.keypoint(v.robot[1]) for v in pairs])
        self._h_origin = np.array([mano.keypoint_index(v.human[0]) for v in pairs])
        self._h_task = np.array([mano.keypoint_index(v.human[1]) for v in pairs])
        self._sqrt_w = np.sqrt([v.weight for v in pairs])[:, None]
        self.last_raw: Optional[np.ndarray] = None
        self.iterations = 0

    def reset(self):
        """Forget the previous output and the warm start."""
        super().reset()
        self.last_raw = None

    def robot_keypoints(self, q: Sequence[float]) -> np.ndarray:
        """Return the robot keypoints (palm frame) of joint angles in hand order."""
        return self.model.forward(q)[0]

    def _residual(self, q, target, q_ref, lam):
        points, jac = self.model.forward(q, jacobian=True)
        vec = points[self._r_task] - points[self._r_origin]
        r = (self._sqrt_w * (vec - target)).reshape(-1)
        j = (self._sqrt_w[:, :, None] * (jac[self._r_task] - jac[self._r_origin]))
        j = j.reshape(-1, q.size)
        if lam > 0:
            r = np.concatenate([r, math.sqrt(lam) * (q - q_ref)])
            j = np.vstack([j, math.sqrt(lam) * np.eye(q.size)])
        return r, j

    def solve(self, target: np.ndarray, q0: np.ndarray,
              q_ref: np.ndarray) -> Tuple[np.ndarray, float]:
        """
        Bounded Levenberg-Marquardt: robot vectors ~ target (M, 3), from q0, prior q_ref.

        Return the joint angles and the final cost (weighted squared residuals, m^2).
        """
        lo, hi = self.lower, self.upper
        q = np.clip(q0, lo, hi)
        lam = self.config.regularisation
        r, j = self._residual(q, target, q_ref, lam)
        cost, mu = r @ r, 1e-3
        for it in range(self.config.max_iterations):
            self.iterations = it + 1
            g = j.T @ r
            h = j.T @ j
            free = ~(((q <= lo + 1e-9) & (g > 0)) | ((q >= hi - 1e-9) & (g < 0)))
            if not np.any(free) or np.max(np.abs(g[free])) < 1e-12:
                break
            hf = h[np.ix_(free, free)]
            step = np.zeros_like(q)
            step[free] = -np.linalg.solve(hf + mu * (np.diag(np.diag(hf)) + 1e-9 * np.eye(
                hf.shape[0])), g[free])
            q_new = np.clip(q + step, lo, hi)
            r_new, j_new = self._residual(q_new, target, q_ref, lam)
            cost_new = r_new @ r_new
            if cost_new < cost:
                done = cost - cost_new < 1e-6 * cost or np.max(np.abs(q_new - q)) < 1e-6
                q, r, j, cost = q_new, r_new, j_new, cost_new
                mu = max(mu / 3, 1e-9)
                if done:
                    break
            else:
                mu *= 4
                if mu > 1e8:
                    break
        return q, float(cost)

    def retarget_keypoints(self, keypoints: np.ndarray) -> np.ndarray:
        """Return joint angles for MANO keypoints (21, 3) in the canonical hand frame."""
        kp = np.asarray(keypoints, dtype=float)
        if kp.shape != (21, 3) or not np.all(np.isfinite(kp)):
            raise ValueError(f'expected 21 finite MANO keypoints (21, 3), got shape {kp.shape}')
        human = kp[self._h_task] - kp[self._h_origin]
        target = self.config.scaling * human @ self.config.human_to_robot.T
        if self.last_raw is not None:  # streaming: warm start from the previous solution
            q, _ = self.solve(target, self.last_raw, self.last_raw)
        else:  # first call: from the open pose, then (unless exact) the others; keep the best
            starts = [self.hand.pose('open')] + [
                p for n, p in self.hand.named_poses.items() if n != 'open'] + [
                (self.lower + self.upper) / 2]
            best = None
            for start in starts:
                fit = self.solve(target, start, start)
                if best is None or fit[1] < best[1]:
                    best = fit
                if best[1] < EXACT_FIT:
                    break
            q = best[0]
        self.last_raw = q
        return self._output(q)

    def retarget(self, pose, global_orient=None) -> np.ndarray:
        """Return joint angles (hand config order) for a MANO pose; the wrist is ignored."""
        return self.retarget_keypoints(self.mano.local_keypoints(pose, global_orient))


def build_retargeter(hand: HandConfig, config: RetargetingConfig,
                     mano_model: Optional[mano.ManoModel] = None) -> Retargeter:
    """Return the retargeter the config names; ValueError if config and hand disagree."""
    cls = DirectRetargeter if config.method == 'direct' else VectorRetargeter
    return cls(hand, config, mano_model)


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
