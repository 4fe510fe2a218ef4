"""
A simulated person's hand for the human demonstrations: MANO kinematics drawn as capsules.

The hand is the MANO skeleton (deft_hand_driver.mano.ManoModel, the average adult right hand:
hand length 0.18 m from the wrist to the middle fingertip) scaled by the person's hand size,
NOT the robot's 16-DOF hand. Its geometry is one capsule per finger bone (15: the proximal,
middle and distal bone of each of the five fingers, the distal one ending at the tip) and a box
for the palm (from the wrist to the knuckles, across the index to pinky knuckles). Every piece
is a mocap (kinematic) body of its own, named `human_bone_<k>` and `human_palm`, positioned
each frame from the keypoints of ManoModel.forward(global_orient, pose) plus a wrist position
(set_pose): the hand is moved, never simulated, as a video shows a hand without its forces.

Frames and units (REP 103): metres and radians; the wrist frame is MANO's canonical hand frame
(+x from the wrist towards the middle knuckle, +z out of the palm on the palmar side, towards
what the hand grasps, +y from the index towards the pinky); the wrist orientation is a
quaternion x, y, z, w in base_link; MANO's global_orient is its rotation vector.

Collisions: the pieces have contype 2 and conaffinity 1, as the robot hand's geoms: they touch
the task objects (contype 1, conaffinity 3), the table and the fixtures, but neither each other
nor the robot hand. Nothing is stepped, so the contacts MuJoCo reports after mj_forward tell
where the hand overlaps the object (the demonstrations' contact detector).

A person's hand size is a uniform scale of the skeleton; MuJoCo sizes are compiled into the
model, so `apply_scale` writes the scaled capsule and box sizes into the model per person.
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import mujoco
import numpy as np

from deft_common import rotations
from deft_hand_driver.mano import FINGERS, JOINT_NAMES, ManoModel, keypoint_index
from deft_sim.mjcf import fmt, mj_quat

PREFIX = 'human'
PARK = (-3.0, 1.0, 1.5)  # m, base: behind every demonstration viewpoint (the hand hidden)


def _bones() -> List[Tuple[int, int, str]]:
    """Return (parent keypoint, child keypoint, finger) of the 15 finger bones, MANO order."""
    out = []
    for f in FINGERS:
        chain = [JOINT_NAMES.index(f'{f}{k}') for k in (1, 2, 3)] + [keypoint_index(f'{f}_tip')]
        out += [(a, b, f) for a, b in zip(chain[:-1], chain[1:])]
    return out


BONES = tuple(_bones())


@dataclass(frozen=True)
class HumanHandGeometry:
    """Radii (m, at hand scale 1) of the capsules and the palm box of the human hand."""

    # proximal, middle, distal bone radius of the four fingers (an adult finger is 16-20 mm
    # thick at the proximal bone, 13-16 mm at the tip)
    finger_radii: Tuple[float, float, float] = (0.0090, 0.0080, 0.0072)
    thumb_radii: Tuple[float, float, float] = (0.0110, 0.0095, 0.0085)
    # palm box: centre and half sizes in the wrist frame (x to the knuckles, y index to pinky,
    # z thickness); its width 2 * 0.04 m spans the index to pinky knuckles plus the skin
    palm_centre: Tuple[float, float, float] = (0.046, 0.007, 0.0)
    palm_half: Tuple[float, float, float] = (0.044, 0.040, 0.012)
    rgba: Tuple[float, float, float, float] = (0.87, 0.68, 0.56, 1.0)

    def __post_init__(self):
        if min(self.finger_radii + self.thumb_radii + self.palm_half) <= 0:
            raise ValueError('the human hand needs positive radii and palm half sizes')

    def radius(self, finger: str, k: int) -> float:
        """Return the radius (m, scale 1) of bone k (0 proximal .. 2 distal) of a finger."""
        return (self.thumb_radii if finger == 'thumb' else self.finger_radii)[k]


SKIN_TONES = ((0.95, 0.80, 0.69), (0.87, 0.68, 0.56), (0.76, 0.57, 0.45),
              (0.62, 0.44, 0.33), (0.45, 0.31, 0.22), (0.33, 0.22, 0.15))


def human_hand_xml(geometry: HumanHandGeometry = HumanHandGeometry()) -> str:
    """Return the MJCF bodies of the hand (mocap, parked at PARK) for MujocoWorld extra_bodies."""
    g = geometry
    props = 'contype="2" conaffinity="1" condim="3" friction="1 0.005 0.0001"'
    parts = []
    per_finger = {}
    for k, (_, _, f) in enumerate(BONES):
        i = per_finger.get(f, 0)
        per_finger[f] = i + 1
        parts.append(f'<body name="{PREFIX}_bone_{k}" mocap="true" pos="{fmt(PARK)}">'
                     f'<geom name="{PREFIX}_bone_{k}" type="capsule" '
                     f'size="{g.radius(f, i):.6g} 0.01" rgba="{fmt(g.rgba)}" {props}/></body>')
    parts.append(f'<body name="{PREFIX}_palm" mocap="true" pos="{fmt(PARK)}">'
                 f'<geom name="{PREFIX}_palm" type="box" size="{fmt(g.palm_half)}" '
                 f'pos="{fmt(g.palm_centre)}" rgba="{fmt(g.rgba)}" {props}/></body>')
    return ''.join(parts)


class HumanHand:
    """
    The hand's mocap bodies in a compiled model: scale, skin, pose per frame, hide.

    Look the bodies up anew (a new HumanHand) whenever the world compiles a new model.
    """

    def __init__(self, model: mujoco.MjModel, geometry: HumanHandGeometry = HumanHandGeometry(),
                 mano: ManoModel = None):
        self.model, self.geometry = model, geometry
        self.mano = mano or ManoModel()
        names = [f'{PREFIX}_bone_{k}' for k in range(len(BONES))] + [f'{PREFIX}_palm']
        self._mocap = np.array([model.body_mocapid[model.body(n).id] for n in names])
        self.geoms = np.array([model.geom(n).id for n in names])
        self._nominal = self.mano.forward(np.zeros(3), np.zeros(45))
        self.scale = 1.0
        self.apply_scale(1.0)

    def apply_scale(self, scale: float) -> None:
        """Size the capsules and the palm for a person whose hand is `scale` x the average."""
        if not 0.5 < scale < 2.0:
            raise ValueError(f'hand scale must be in (0.5, 2), got {scale}')
        m, g = self.model, self.geometry
        self.scale = float(scale)
        per_finger = {}
        for k, (a, b, f) in enumerate(BONES):
            i = per_finger.get(f, 0)
            per_finger[f] = i + 1
            r = g.radius(f, i) * scale
            half = 0.5 * float(np.linalg.norm(self._nominal[b] - self._nominal[a])) * scale
            gid = self.geoms[k]
            m.geom_size[gid, :2] = (r, half)
            m.geom_rbound[gid] = r + half
            m.geom_aabb[gid] = (0.0, 0.0, 0.0, r, r, r + half)
        gid = self.geoms[-1]
        half = np.asarray(g.palm_half) * scale
        m.geom_size[gid] = half
        m.geom_pos[gid] = np.asarray(g.palm_centre) * scale
        m.geom_rbound[gid] = float(np.linalg.norm(half))
        m.geom_aabb[gid] = (0.0, 0.0, 0.0, *half)

    def set_skin(self, rgb: Sequence[float]) -> None:
        """Colour every piece of the hand (RGB 0..1)."""
        self.model.geom_rgba[self.geoms, :3] = rgb

    def keypoints(self, wrist_position, wrist_orientation, pose) -> np.ndarray:
        """Return the 21 MANO keypoints (21, 3; m, base) of the scaled hand in a pose."""
        go = rotations.to_rotvec(wrist_orientation)
        return np.asarray(wrist_position, dtype=float) + self.scale * self.mano.forward(go, pose)

    def set_pose(self, data: mujoco.MjData, wrist_position, wrist_orientation, pose) -> np.ndarray:
        """
        Move the hand's bodies to a pose; return its keypoints (21, 3; m, base).

        wrist_position: m, base; wrist_orientation: quaternion x, y, z, w (the MANO wrist frame
        in base); pose: MANO's 45 finger values (rad). Call mj_forward before reading contacts.
        """
        kp = self.keypoints(wrist_position, wrist_orientation, pose)
        for k, (a, b, _) in enumerate(BONES):
            axis = kp[b] - kp[a]
            data.mocap_pos[self._mocap[k]] = 0.5 * (kp[a] + kp[b])
            data.mocap_quat[self._mocap[k]] = mj_quat(z_to(axis))
        data.mocap_pos[self._mocap[-1]] = kp[0]
        data.mocap_quat[self._mocap[-1]] = mj_quat(wrist_orientation)
        return kp

    def hide(self, data: mujoco.MjData) -> None:
        """Park the hand at PARK, out of every demonstration viewpoint (call mj_forward next)."""
        data.mocap_pos[self._mocap] = PARK

    def proportions(self) -> dict:
        """Return the scaled hand's index finger length, palm width, hand length (m)."""
        kp = self.scale * self._nominal
        index = [JOINT_NAMES.index('index1'), JOINT_NAMES.index('index2'),
                 JOINT_NAMES.index('index3'), keypoint_index('index_tip')]
        return {'index_length': float(sum(np.linalg.norm(kp[b] - kp[a])
                                           for a, b in zip(index[:-1], index[1:]))),
                'palm_width': 2.0 * self.geometry.palm_half[1] * self.scale,
                'hand_length': float(np.linalg.norm(kp[keypoint_index('middle_tip')] - kp[0]))}


def z_to(direction) -> np.ndarray:
    """Return the quaternion (x, y, z, w) of the shortest turn of +z onto `direction`."""
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    axis = np.cross([0.0, 0.0, 1.0], d)
    s, c = float(np.linalg.norm(axis)), float(d[2])
    if s < 1e-9:
        return np.array([0.0, 0.0, 0.0, 1.0]) if c > 0 else np.array([1.0, 0.0, 0.0, 0.0])
    return rotations.from_rotvec(axis / s * np.arctan2(s, c))
