"""
MANO hand poses: joint order, forward kinematics to 21 keypoints, anatomical angles, mirroring.

No rclpy, no torch, no pickle. A MANO pose is `global_orient` (3, axis-angle of the wrist) and
`pose` (45 = 15 joints x 3 axis-angle, each relative to its parent, in the model frame), the
layout of the official MANO model and of the estimators built on it.

Joint order (the MANO model's, 16 joints; `pose` holds joints 1..15 in this order)::

    0 wrist
    1 index1   2 index2   3 index3      (index MCP, PIP, DIP)
    4 middle1  5 middle2  6 middle3
    7 pinky1   8 pinky2   9 pinky3
    10 ring1   11 ring2   12 ring3
    13 thumb1  14 thumb2  15 thumb3     (thumb CMC, MCP, IP)

Keypoints (21) are the 16 joints in that order followed by the five tips, in the same finger
order: 16 index_tip, 17 middle_tip, 18 pinky_tip, 19 ring_tip, 20 thumb_tip. MANO itself has no
tip joints; the tips move rigidly with the distal joint (joint 3 of each finger).

Two skeletons:

* The kinematic approximation (the default): an average adult right hand (hand length 0.18 m,
  wrist to middle tip), bone lengths in `FINGER_BONES`, joint positions in `MCP_POSITIONS` and
  `THUMB_CMC`. Its frame is the canonical hand frame below, so for the approximation the model
  frame and the canonical frame coincide. In the flat hand each finger is straight along the ray
  from the wrist through its MCP, so a tip lies at |MCP| + the finger's three bone lengths from
  the wrist (`flat_tip_distances()`): index 0.1708 m, middle 0.1800 m, pinky 0.1536 m, ring
  0.1734 m, thumb 0.1301 m. The thumb runs from the CMC at 40 degrees from the fingers towards
  the thumb side. A left approximation is the exact mirror image (y negated).
* The MANO model, when the user provides a converted model file (`.npz`, see `load_model_npz`):
  its template joint positions (optionally shaped by `betas`) replace the approximation; its
  kinematic tree must be MANO's. If the file holds `hands_mean` (45), poses are taken as
  relative to that mean pose (the official model's default, `flat_hand_mean=False`): the
  rotations applied are `pose + hands_mean`. Leave it out of the file for poses that are
  absolute (estimators run with `flat_hand_mean=True`).

The canonical hand frame (what retargeting consumes): origin at the wrist, +x from the wrist
towards the middle-finger MCP, +z the palm normal on the palmar side (fingers flex towards +z),
+y = z cross x, which for a right hand points from the index towards the pinky. A left hand is
expressed in the mirrored frame (+y still towards the pinky), so a left hand and the mirror
image of a right hand give identical canonical keypoints: the robot sees the same pose.

Converting the official model once (it cannot be shipped; its pickle is never read here): in a
separate environment with the official MANO code or `smplx` (which can read the pickle), run::

    import numpy as np, smplx
    m = smplx.MANO('models/', is_rhand=True, use_pca=False)   # is_rhand=False for MANO_LEFT
    np.savez('mano_right.npz', v_template=m.v_template.numpy(),
             J_regressor=m.J_regressor.numpy(), shapedirs=m.shapedirs.numpy(),
             kintree_table=np.array([m.parents.numpy(), np.arange(16)]),
             hands_mean=m.pose_mean.numpy()[3:])  # only if the poses are relative to it

and pass the .npz path. Alternatively save `J_template` (16, 3) and optionally `tip_template`
(5, 3, tips in the finger order above) directly.
"""

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from deft_common import rotations

FINGERS = ('index', 'middle', 'pinky', 'ring', 'thumb')  # MANO's finger order
JOINT_NAMES = ('wrist',) + tuple(f'{f}{k}' for f in FINGERS for k in (1, 2, 3))
POSE_JOINTS = JOINT_NAMES[1:]  # the order of the 15 x 3 values of `pose`
TIP_NAMES = tuple(f'{f}_tip' for f in FINGERS)
KEYPOINT_NAMES = JOINT_NAMES + TIP_NAMES
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
TIP_PARENTS = (3, 6, 9, 12, 15)
SIDES = ('right', 'left')
ANGLES = ('flex', 'abd', 'twist')  # anatomical components, see ManoModel.anatomical_angles
# Fingertip vertices of the MANO mesh (thumb, index, middle, ring, pinky order of the common
# convention), used for the tips when the .npz holds v_template but no tip_template.
TIP_VERTICES = {'thumb': 745, 'index': 317, 'middle': 444, 'ring': 556, 'pinky': 673}

# --- the kinematic approximation (right hand, canonical frame, metres) ------------------------
MCP_POSITIONS = {
    'index': (0.085, -0.022, 0.0),
    'middle': (0.088, 0.0, 0.0),
    'pinky': (0.075, 0.037, 0.0),
    'ring': (0.082, 0.020, 0.0),
}
THUMB_CMC = (0.025, -0.020, 0.005)
THUMB_ANGLE = math.radians(40.0)  # flat-hand thumb direction, from +x towards -y
# proximal, middle, distal-to-tip (thumb: metacarpal CMC-MCP, proximal MCP-IP, distal IP-tip)
FINGER_BONES = {
    'index': (0.039, 0.023, 0.021),
    'middle': (0.044, 0.026, 0.022),
    'pinky': (0.032, 0.019, 0.019),
    'ring': (0.041, 0.026, 0.022),
    'thumb': (0.040, 0.032, 0.026),
}


def keypoint_index(name: str) -> int:
    """Return the row of a keypoint name in the (21, 3) keypoint arrays."""
    try:
        return KEYPOINT_NAMES.index(name)
    except ValueError:
        raise ValueError(
            f'unknown MANO keypoint {name!r}; known: {", ".join(KEYPOINT_NAMES)}') from None


def mirror_pose(global_orient: Sequence[float], pose: Sequence[float],
                normal: Sequence[float] = (0.0, 1.0, 0.0)) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return (global_orient, pose) of the mirror-image hand, reflected in the plane with `normal`.

    A rotation R becomes M R M with M = I - 2 n n^T, i.e. the axis-angle r becomes -M r. The
    approximation's left and right skeletons mirror in the y = 0 plane (the default normal). The
    official MANO_LEFT and MANO_RIGHT templates mirror in x = 0: normal (1, 0, 0), the familiar
    'negate the y and z components'.
    """
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    m = np.eye(3) - 2 * np.outer(n, n)
    flip = np.asarray(global_orient, dtype=float) @ (-m).T
    flipped = np.asarray(pose, dtype=float).reshape(15, 3) @ (-m).T
    return flip, flipped.reshape(45)


def approximate_template(side: str = 'right') -> np.ndarray:
    """Return the approximation's flat-hand keypoints (21, 3), wrist at the origin."""
    points = np.zeros((21, 3))
    for f in FINGERS:
        if f == 'thumb':
            start = np.array(THUMB_CMC)
            direction = np.array([math.cos(THUMB_ANGLE), -math.sin(THUMB_ANGLE), 0.0])
        else:
            start = np.array(MCP_POSITIONS[f])
            direction = start / np.linalg.norm(start)
        along = np.concatenate([[0.0], np.cumsum(FINGER_BONES[f])])
        rows = [JOINT_NAMES.index(f'{f}{k}') for k in (1, 2, 3)] + [keypoint_index(f'{f}_tip')]
        points[rows] = start + along[:, None] * direction
    if side == 'left':
        points[:, 1] *= -1
    return points


def flat_tip_distances() -> Dict[str, float]:
    """Return the documented wrist-to-tip distances (m) of the approximation's flat hand."""
    out = {}
    for f in FINGERS:
        start = np.array(THUMB_CMC if f == 'thumb' else MCP_POSITIONS[f])
        if f == 'thumb':
            direction = np.array([math.cos(THUMB_ANGLE), -math.sin(THUMB_ANGLE), 0.0])
            out[f] = float(np.linalg.norm(start + sum(FINGER_BONES[f]) * direction))
        else:
            out[f] = float(np.linalg.norm(start) + sum(FINGER_BONES[f]))
    return out


def load_model_npz(path: str, betas: Optional[Sequence[float]] = None) -> np.ndarray:
    """
    Return the rest keypoints (21, 3) of a converted MANO model file (see the module docstring).

    Accepted keys: `J_template` (16, 3), or `J_regressor` (16, V) with `v_template` (V, 3) and
    optionally `shapedirs` (V, 3, B) for `betas`; `kintree_table` (2, 16), checked against MANO's
    tree when present; `tip_template` (5, 3), else the fingertip vertices of `v_template`, else
    the distal bone extended by the approximation's proportions; `hands_mean` (45,) optional,
    see `load_model_file`. Other keys are ignored. ValueError naming the problem.
    """
    return load_model_file(path, betas)[0]


def load_model_file(path: str, betas: Optional[Sequence[float]] = None
                    ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Return (rest keypoints (21, 3), hands_mean (45,) or None) of a converted model file."""
    file = Path(path)
    if file.suffix != '.npz':
        raise ValueError(f'MANO model file {file}: expected a converted .npz file (the official '
                         '.pkl is never read here; see the module docstring to convert it)')
    try:
        data = dict(np.load(file, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise ValueError(f'cannot read MANO model file {file}: {exc}') from exc
    try:
        verts = None
        if 'v_template' in data:
            verts = np.asarray(data['v_template'], dtype=float)
            if betas is not None and 'shapedirs' in data:
                b = np.asarray(betas, dtype=float)
                dirs = np.asarray(data['shapedirs'], dtype=float)[..., :b.size]
                verts = verts + dirs @ b
        if 'J_template' in data:
            joints = np.asarray(data['J_template'], dtype=float)
        elif 'J_regressor' in data and verts is not None:
            joints = np.asarray(data['J_regressor'], dtype=float) @ verts
        else:
            raise ValueError('needs J_template, or J_regressor with v_template')
        if joints.shape != (16, 3) or not np.all(np.isfinite(joints)):
            raise ValueError(f'joint template has shape {joints.shape}, expected (16, 3)')
        if 'kintree_table' in data:
            parents = np.asarray(data['kintree_table'])[0, 1:].astype(int).tolist()
            if parents != list(PARENTS[1:]):
                raise ValueError(f'kintree_table parents {parents} differ from MANO')
        if 'tip_template' in data:
            tips = np.asarray(data['tip_template'], dtype=float)
            if tips.shape != (5, 3):
                raise ValueError(f'tip_template has shape {tips.shape}, expected (5, 3)')
        elif verts is not None:
            tips = verts[[TIP_VERTICES[f] for f in FINGERS]]
        else:
            tips = []
            for f, parent in zip(FINGERS, TIP_PARENTS):
                bones = FINGER_BONES[f]
                distal = joints[parent] - joints[PARENTS[parent]]
                tips.append(joints[parent] + distal * bones[2] / bones[1])
            tips = np.array(tips)
        if not np.all(np.isfinite(tips)):
            raise ValueError('tip positions are not finite')
        mean = None
        if 'hands_mean' in data:
            mean = np.asarray(data['hands_mean'], dtype=float).reshape(-1)
            if mean.shape != (45,) or not np.all(np.isfinite(mean)):
                raise ValueError(f'hands_mean needs 45 finite values (15 joints x 3), got '
                                 f'{mean.size}')
        rest = np.vstack([joints, tips])
        bones = [rest[j] - rest[PARENTS[j]] for j in range(1, 16)]
        bones += [rest[16 + i] - rest[p] for i, p in enumerate(TIP_PARENTS)]
        if min(float(np.linalg.norm(b)) for b in bones) < 1e-6:
            raise ValueError('degenerate skeleton: two joints (or a tip and its joint) coincide')
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f'MANO model file {file}: {exc}') from exc
    return rest, mean


@dataclass
class ManoModel:
    """
    A MANO skeleton: the approximation (model_path '') or a converted model file.

    `side` is 'right' or 'left'. `rest` holds the flat-hand keypoints (21, 3) in the model
    frame; `frame` (3x3, rows = canonical axes in model coordinates, a reflection for a left
    hand) maps model vectors into the canonical right-equivalent hand frame. `hands_mean` (45,
    zeros unless the model file has one) is added to every pose before its rotations are used.
    """

    side: str = 'right'
    model_path: str = ''
    betas: Optional[Sequence[float]] = None

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f'MANO side {self.side!r} is not one of {", ".join(SIDES)}')
        self.hands_mean = np.zeros(45)
        if self.model_path:
            self.rest, mean = load_model_file(self.model_path, self.betas)
            if mean is not None:
                self.hands_mean = mean
        else:
            self.rest = approximate_template(self.side)
        j = {n: self.rest[i] for i, n in enumerate(JOINT_NAMES)}
        x = j['middle1'] - j['wrist']
        x = x / np.linalg.norm(x)
        y = j['pinky1'] - j['index1']
        y = y - (y @ x) * x
        y = y / np.linalg.norm(y)
        z = np.cross(x, y) * (1.0 if self.side == 'right' else -1.0)
        self.frame = np.vstack([x, y, z])
        canon = self.canonical(self.rest)
        # anatomical frame per pose joint: columns (bone direction, lateral, palmar)
        self._anat = np.zeros((15, 3, 3))
        for k in range(15):
            joint = k + 1
            child = (PARENTS.index(joint) if joint in PARENTS
                     else 16 + TIP_PARENTS.index(joint))
            u = canon[child] - canon[joint]
            u = u / np.linalg.norm(u)
            zz = np.array([0.0, 0.0, 1.0]) - u[2] * u
            zz = zz / np.linalg.norm(zz)
            self._anat[k] = np.column_stack([u, np.cross(zz, u), zz])

    def canonical(self, points: np.ndarray) -> np.ndarray:
        """Express model-frame points (N, 3) in the canonical frame, relative to the rest wrist."""
        return (np.asarray(points, dtype=float) - self.rest[0]) @ self.frame.T

    def forward(self, global_orient: Sequence[float], pose: Sequence[float]) -> np.ndarray:
        """Return the 21 keypoints (21, 3) in the model frame (MANO's kinematic chain)."""
        rots = self._rotations(global_orient, pose)
        g_rot = np.zeros((16, 3, 3))
        g_pos = np.zeros((16, 3))
        g_rot[0], g_pos[0] = rots[0], self.rest[0]
        for j in range(1, 16):
            p = PARENTS[j]
            g_rot[j] = g_rot[p] @ rots[j]
            g_pos[j] = g_pos[p] + g_rot[p] @ (self.rest[j] - self.rest[p])
        tips = [g_pos[p] + g_rot[p] @ (self.rest[16 + i] - self.rest[p])
                for i, p in enumerate(TIP_PARENTS)]
        return np.vstack([g_pos, tips])

    def local_keypoints(self, pose: Sequence[float],
                        global_orient: Optional[Sequence[float]] = None) -> np.ndarray:
        """
        Return the keypoints (21, 3) in the canonical hand frame, wrist at the origin.

        The wrist orientation is removed (it belongs to the arm); a left hand comes out as the
        mirror image, i.e. as the right hand the robot should reproduce.
        """
        go = np.zeros(3) if global_orient is None else global_orient
        world = self.forward(go, pose)
        r0 = rotations.rotvec_to_matrix(go)
        local = (world - world[0]) @ r0  # R0^T (p - wrist)
        return local @ self.frame.T

    def anatomical_angles(self, pose: Sequence[float]) -> np.ndarray:
        """
        Return (15, 3) anatomical angles (flex, abd, twist) of the pose joints, in MANO order.

        Each joint's rotation is expressed in its anatomical frame (bone direction, lateral,
        palmar normal) of the canonical right-equivalent hand and split as
        R = Rz(abd) Ry(-flex) Rx(twist): flex > 0 bends towards the palm, abd > 0 swings
        towards the pinky side, twist is about the bone.
        """
        rots = self._rotations(np.zeros(3), pose)[1:]
        out = np.zeros((15, 3))
        for k in range(15):
            a = self._anat[k]
            r = a.T @ self.frame @ rots[k] @ self.frame.T @ a
            pitch = math.asin(float(np.clip(-r[2, 0], -1.0, 1.0)))
            yaw = math.atan2(r[1, 0], r[0, 0])
            roll = math.atan2(r[2, 1], r[2, 2])
            out[k] = (-pitch, yaw, roll)
        return out

    def pose_from_anatomical(self, angles: Dict[str, Sequence[float]]) -> np.ndarray:
        """Return the 45-value pose for {pose joint name: (flex, abd, twist)}; others are 0."""
        pose = np.zeros((15, 3))
        for name, (flex, abd, twist) in angles.items():
            if name not in POSE_JOINTS:
                raise ValueError(f'unknown MANO pose joint {name!r}; known: '
                                 f'{", ".join(POSE_JOINTS)}')
            k = POSE_JOINTS.index(name)
            a = self._anat[k]
            r = rotations.rpy_to_matrix((twist, -flex, abd))  # Rz(abd) Ry(-flex) Rx(twist)
            pose[k] = rotations.matrix_to_rotvec(self.frame.T @ a @ r @ a.T @ self.frame)
        return pose.reshape(45) - self.hands_mean

    def _rotations(self, global_orient, pose) -> np.ndarray:
        go = np.asarray(global_orient, dtype=float).reshape(-1)
        p = np.asarray(pose, dtype=float).reshape(-1)
        if go.shape != (3,) or p.shape != (45,):
            raise ValueError(f'MANO pose needs global_orient (3) and pose (45), got '
                             f'{go.size} and {p.size} values')
        if not (np.all(np.isfinite(go)) and np.all(np.isfinite(p))):
            raise ValueError('MANO pose is not finite')
        return rotations.rotvec_to_matrix(np.vstack([go, (p + self.hands_mean).reshape(15, 3)]))


def model_from_parameter(path: str, side: str = 'right') -> Optional[ManoModel]:
    """Return the MANO model a `mano_model_path` parameter names ('' = None, the approximation)."""
    if not path:
        return None
    try:
        return ManoModel(side=side, model_path=path)
    except ValueError as exc:
        raise ValueError(f'parameter mano_model_path: {exc}') from None
