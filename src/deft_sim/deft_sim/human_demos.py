"""
Simulated human demonstration clips, labelled as DEFT labels videos of people (see docs).

For each clip a simulated person (human_hand: MANO proportions, hand size 0.9-1.1 x the average
adult, their own skin tone, grasp location, wrist angle and finger closure) performs a task on
a TRAIN configuration of the twin (world.reset(seed, 'train'): an object instance and a
placement), in a varied scene (table colour, lighting, 0-3 distractors, a viewpoint that is
not the robot's camera), the way people do it:

- pick_cup, pour_cup: the cup by its side (palm on the wall, fingers wrapped round it, the mouth
  free); the robot's nominal pick_cup grasp is palm-down on top of the cup.
- pick_spoon: the handle's rear half pinched by thumb and index finger from above;
  scoop_grape, stir_spoon: the ladle's handle in a tripod grip (thumb, index, middle).
- open_drawer: a hook grasp, the fingers curled over and behind the bar, palm down.

A clip is a few frames a second (`step` m or `turn_step` rad of motion per frame): the hand
approaches from out of contact (pre-shaped, along the task's approach direction), closes from
the pre-shape to its grasp (MANO pose interpolated), then moves the object along the task's
motion (lift and carry, pour tilt, scoop, stir circle, pull). The hand and, once grasped, the
object are moved kinematically (mocap hand, object pose set per frame, no physics step): a clip
is what a video shows, not a simulation of forces; the pour's material is carried with the cup
(nothing is poured), the scoop's grapes stay in the dish.

Labels of a clip (the manifest line; deft_affordance.dataset reads it):

1. contact frame: the first frame in which MuJoCo reports a contact between a piece of the hand
   and a geom of the object (it stands in for the 100DOH hand-object detector);
2. contact_points: the hand-object contact positions of that frame projected into the FIRST
   frame's image (the camera does not move; the object has not moved before the contact),
   summarised by the centres of a 2-D Gaussian mixture (EM, `components` at most, heaviest
   first), in pixels of the crop;
3. crop: the object's box in the first frame, rendered with the hand hidden, square, grown by
   `margin`, resized to `size` (human_labels.crop_box / cut / to_crop);
4. wrist_rotation: the MANO wrist frame (global_orient) in the viewpoint camera's optical frame
   at the contact frame (x, y, z, w); hand_pose: the 45 MANO pose values at that frame;
5. task: the TaskSpec's text; split: 'train', or 'val' for a seeded `val_fraction` of the clips
   (a validation split of train configurations; never 'test');
6. provenance: clip, contact_frame, frames, person, instance, seed (the configuration seed),
   sim_task, viewpoint, contact_base (mean human contact, m, base) and robot_contact_base (the
   TaskSpec's nominal robot contact, m, base) of the same configuration.

The post-grasp trajectory tau of a task comes from its first clip: the wrist path from the
contact frame on (offsets from the wrist at contact, base axes, flat x, y, z triples, starting
with the contact itself at 0, 0, 0; rotation vectors per waypoint as TaskSpec.tau_rotations),
written to OUT/taus.json next to the manifest.

    deft_sim_labels --task all --n 50 --out DIR --seed 0 --size 128 [--frames]
"""

import argparse
from dataclasses import asdict, dataclass, field
import json
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform
from deft_sim.human_hand import SKIN_TONES, HumanHand, human_hand_xml
from deft_sim.human_labels import crop_box, cut, load_hand, to_crop
from deft_sim.mjcf import fmt

ROBOT_PARK = (-3.0, -1.0, 1.5, 1.0, 0.0, 0.0, 0.0)  # the robot hand, behind every viewpoint
DISTRACTOR_PARK = (-3.0, -1.5, -1.0)  # m, base: unused distractors, below the floor
N_DISTRACTORS = 3
CAMERA_TO_BASE = (0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0)  # the robot's camera (not rendered here)
TABLE_COLOURS = ((0.59, 0.48, 0.36), (0.80, 0.78, 0.74), (0.35, 0.26, 0.18), (0.55, 0.60, 0.62),
                 (0.90, 0.88, 0.80), (0.42, 0.45, 0.38), (0.70, 0.55, 0.40), (0.25, 0.27, 0.30))
DISTRACTOR_COLOURS = ((0.2, 0.5, 0.8), (0.85, 0.85, 0.2), (0.6, 0.3, 0.6), (0.3, 0.7, 0.7),
                      (0.9, 0.6, 0.6), (0.5, 0.5, 0.5))

# Human grasp poses, anatomical (flex, abd, twist) rad per MANO joint (deft_hand_driver.mano);
# the pinch's thumb and index tips meet (1.1 cm apart at hand scale 1), the tripod adds the
# middle finger, the hook curls the fingers at PIP and DIP round a bar.
_F4 = ('index', 'middle', 'ring', 'pinky')
HUMAN_POSES: Dict[str, Dict[str, Tuple[float, float, float]]] = {
    'wrap': {**{f'{f}{k}': (a, 0.0, 0.0) for f in _F4 for k, a in zip((1, 2, 3),
                                                                         (0.75, 0.95, 0.55))},
             'thumb1': (0.5, 0.5, 0.0), 'thumb2': (0.3, 0.0, 0.0), 'thumb3': (0.3, 0.0, 0.0)},
    'pinch': {'index1': (0.7, 0.0, 0.0), 'index2': (0.7, 0.0, 0.0), 'index3': (0.4, 0.0, 0.0),
              **{f'{f}{k}': (a, 0.0, 0.0) for f in ('middle', 'ring', 'pinky')
                 for k, a in zip((1, 2, 3), (0.6, 1.9, 1.3))},
              'thumb1': (0.6, 0.6, 0.0)},
    'tripod': {'index1': (0.7, 0.0, 0.0), 'index2': (0.7, 0.0, 0.0), 'index3': (0.4, 0.0, 0.0),
               'middle1': (0.7, 0.0, 0.0), 'middle2': (0.8, 0.0, 0.0), 'middle3': (0.4, 0.0, 0.0),
               **{f'{f}{k}': (a, 0.0, 0.0) for f in ('ring', 'pinky')
                  for k, a in zip((1, 2, 3), (0.6, 1.9, 1.3))},
               'thumb1': (0.6, 0.6, -1.0), 'thumb2': (0.2, 0.0, 0.0)},
    'hook': {**{f'{f}{k}': (a, 0.0, 0.0) for f in _F4 for k, a in zip((1, 2, 3),
                                                                         (0.3, 1.4, 1.0))},
             'thumb1': (0.2, -0.2, 0.0)},
}
# per task: the pose, where its grasp site is (palm, pinch, hook) and the contact jitter
# (object frame, m at instance scale 1, +- per axis; the cup's 'x' is an angle round it, rad)
HUMAN_GRASPS = {
    'pick_cup': ('wrap', 'palm', (0.26, 0.0, 0.012)),
    'pour_cup': ('wrap', 'palm', (0.26, 0.0, 0.012)),
    'pick_spoon': ('pinch', 'pinch', (0.015, 0.0, 0.0)),
    'scoop_grape': ('tripod', 'pinch', (0.02, 0.0, 0.0)),
    'stir_spoon': ('tripod', 'pinch', (0.02, 0.0, 0.0)),
    'open_drawer': ('hook', 'hook', (0.0, 0.03, 0.0)),
}


@dataclass(frozen=True)
class DemoSettings:
    """Rendering, crop, split, person and scene settings of the demonstration generator."""

    size: int = 128  # px: crop side after resizing
    width: int = 224  # px: rendered frame width
    height: int = 168  # px: rendered frame height
    margin: float = 0.15  # crop growth on every side, fraction of the box's longer side
    val_fraction: float = 0.15  # seeded fraction of clips in the 'val' split
    components: int = 3  # at most this many Gaussian-mixture centres per clip's contacts
    approach_frames: int = 5  # frames from the pre-grasp pose (out of contact) to the grasp
    close_frames: int = 6  # frames closing the hand from its pre-shape to the grasp pose
    step: float = 0.03  # m of object motion per frame (a few frames per second of motion)
    turn_step: float = 0.3  # rad of object turn per frame
    hand_scale: Tuple[float, float] = (0.9, 1.1)  # a person's hand size, x the average adult
    wrist_jitter: float = 0.1  # rad: std per axis of a person's wrist turn (clipped at 20 deg)
    closure: Tuple[float, float] = (0.9, 1.1)  # factor of the grasp pose's flexion
    flex_jitter: float = 0.05  # rad: std of each joint's flexion
    contact_jitter: float = 1.0  # factor of the tasks' contact jitter (HUMAN_GRASPS)
    azimuth: Tuple[float, float] = (-60.0, 60.0)  # deg: viewpoint azimuth (0: looking along +x)
    elevation: Tuple[float, float] = (-55.0, -25.0)  # deg: viewpoint elevation (< 0: down)
    distance: Tuple[float, float] = (0.5, 0.8)  # m: viewpoint distance from the object

    def __post_init__(self):
        if self.size < 8 or min(self.width, self.height) < 16:
            raise ValueError('size must be >= 8 px, width and height >= 16 px')
        if not 0 <= self.val_fraction <= 1:
            raise ValueError('val_fraction must be in [0, 1]')
        if self.components < 1 or self.approach_frames < 2 or self.close_frames < 1:
            raise ValueError('components >= 1, approach_frames >= 2, close_frames >= 1')
        if self.step <= 0 or self.turn_step <= 0 or self.margin < 0:
            raise ValueError('step and turn_step must be > 0, margin >= 0')
        if not 0.5 < self.hand_scale[0] <= self.hand_scale[1] < 2:
            raise ValueError('hand_scale needs 0.5 < low <= high < 2')


@dataclass
class Person:
    """What differs between the people of the clips (drawn per clip)."""

    scale: float  # hand size, x the average adult hand (0.18 m wrist to middle tip)
    wrist_jitter: Tuple[float, float, float]  # rad: rotation vector, base axes, about the site
    closure: float  # factor of the grasp's flexion
    flex_noise: Tuple[float, ...]  # rad: added to each of the 15 joints' flexion
    contact: Tuple[float, float, float]  # -1..1 per axis: where in the task's contact jitter
    skin: Tuple[float, float, float]

    def summary(self) -> dict:
        """Return the manifest's 'person' provenance."""
        return {'scale': round(self.scale, 4), 'closure': round(self.closure, 4),
                'wrist_jitter_deg': round(float(np.degrees(np.linalg.norm(self.wrist_jitter))), 2),
                'contact': [round(v, 4) for v in self.contact]}


@dataclass
class Viewpoint:
    """A free camera looking at `lookat` (MuJoCo's azimuth/elevation in deg, distance m)."""

    lookat: Tuple[float, float, float]
    azimuth: float
    elevation: float
    distance: float
    fovy: float = 45.0  # deg: MuJoCo's free-camera field of view (model.vis.global_.fovy)

    def camera_to_base(self) -> Transform:
        """Return the optical frame (x right, y down, z forward) in base_link."""
        a, e = np.radians(self.azimuth), np.radians(self.elevation)
        forward = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        up = np.array([-np.sin(e) * np.cos(a), -np.sin(e) * np.sin(a), np.cos(e)])
        right = np.cross(forward, up)
        pos = np.asarray(self.lookat) - self.distance * forward
        return Transform(pos, rotations.from_matrix(np.column_stack([right, -up, forward])))

    def summary(self) -> dict:
        """Return the manifest's 'viewpoint' provenance."""
        return {'lookat': [round(float(v), 4) for v in self.lookat],
                'azimuth': round(self.azimuth, 2), 'elevation': round(self.elevation, 2),
                'distance': round(self.distance, 4), 'fovy': self.fovy}


@dataclass
class Clip:
    """One demonstration: its frames' hand states and contacts, and its labels."""

    task: str
    index: int
    seed: int  # the configuration seed (world.reset(seed, 'train'))
    split: str
    instance: str
    person: Person
    viewpoint: Viewpoint
    wrists: np.ndarray  # (F, 3) m, base: the MANO wrist per frame
    quats: np.ndarray  # (F, 4) x y z w, base: the MANO wrist frame per frame
    poses: np.ndarray  # (F, 45) MANO pose per frame
    contacts: List[np.ndarray]  # per frame: (n, 3) hand-object contact positions, m, base
    contact_frame: int
    crop: np.ndarray  # (size, size, 3) uint8: the object in the first frame, hand hidden
    box: Tuple[float, float, float]  # the crop box (u0, v0, side) in the first frame, px
    contact_points: np.ndarray  # (K, 2) crop px: Gaussian-mixture centres of the contacts
    wrist_optical: np.ndarray  # (4,) the MANO wrist in the viewpoint's optical frame
    hand_pose: np.ndarray  # (45,) at the contact frame
    robot_contact: np.ndarray  # (3,) m, base: the TaskSpec's nominal robot contact (mean)
    frames: Optional[List[np.ndarray]] = None  # rendered RGB frames (hand shown), if asked
    object_start: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def contact_base(self) -> np.ndarray:
        """Return the mean hand-object contact position at the contact frame (m, base)."""
        return self.contacts[self.contact_frame].mean(axis=0)

    def tau(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the wrist path from the contact frame on (the post-grasp trajectory tau).

        Offsets (N, 3; m, base axes) from the wrist at contact and rotation vectors (N, 3;
        rad, base axes, q = exp(r) q_contact); the first waypoint is the contact (zeros);
        frames that do not move are dropped.
        """
        c = self.contact_frame
        p0, q0 = self.wrists[c], self.quats[c]
        offsets, turns = [np.zeros(3)], [np.zeros(3)]
        for p, q in zip(self.wrists[c + 1:], self.quats[c + 1:]):
            o = p - p0
            r = rotations.to_rotvec(rotations.multiply(q, rotations.conjugate(q0)))
            if np.linalg.norm(o - offsets[-1]) > 1e-6 or np.linalg.norm(r - turns[-1]) > 1e-6:
                offsets.append(o)
                turns.append(r)
        return np.array(offsets), np.array(turns)


def gmm_centres(points: np.ndarray, k: int, iterations: int = 50,
                reg: float = 0.25) -> np.ndarray:
    """
    Return the centres (<= k, 2) of a 2-D Gaussian mixture fitted to points (N, 2) by EM.

    k is capped by the number of distinct points; full covariances plus `reg` (px^2) on the
    diagonal; initialised by farthest-point sampling (deterministic); heaviest first.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError('no points to fit')
    k = min(k, len(np.unique(np.round(pts, 3), axis=0)))
    if k == 1:
        return pts.mean(axis=0, keepdims=True)
    means = [pts[np.argmin(np.linalg.norm(pts - pts.mean(axis=0), axis=1))]]
    while len(means) < k:
        d = np.min([np.linalg.norm(pts - m, axis=1) for m in means], axis=0)
        means.append(pts[np.argmax(d)])
    means = np.array(means)
    spread = np.cov(pts.T) + reg * np.eye(2) if len(pts) > 2 else np.eye(2)
    covs = np.repeat(spread[None] / k, k, axis=0) + reg * np.eye(2)
    weights = np.full(k, 1.0 / k)
    for _ in range(iterations):
        logp = np.empty((len(pts), k))
        for j in range(k):
            diff = pts - means[j]
            inv = np.linalg.inv(covs[j])
            logp[:, j] = (np.log(weights[j]) - 0.5 * np.log(np.linalg.det(covs[j]))
                          - 0.5 * np.einsum('ni,ij,nj->n', diff, inv, diff))
        logp -= logp.max(axis=1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0) + 1e-12
        weights = nk / nk.sum()
        means = resp.T @ pts / nk[:, None]
        for j in range(k):
            diff = pts - means[j]
            covs[j] = (resp[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(2)
    keep = weights > 1e-3
    order = np.argsort(-weights[keep], kind='stable')
    return means[keep][order]


def distractors_xml() -> str:
    """Return N_DISTRACTORS boxes and cylinders (visual only, mocap, parked below the floor)."""
    out = []
    for k in range(N_DISTRACTORS):
        for kind, size in (('box', '0.03 0.03 0.03'), ('cylinder', '0.03 0.03')):
            out.append(f'<body name="distractor_{kind}_{k}" mocap="true" '
                       f'pos="{fmt(DISTRACTOR_PARK)}"><geom name="distractor_{kind}_{k}" '
                       f'type="{kind}" size="{size}" contype="0" conaffinity="0" '
                       f'rgba="0.5 0.5 0.5 1"/></body>')
    return ''.join(out)


def human_pose(name: str, person: Optional[Person] = None) -> np.ndarray:
    """Return the 45 MANO values of a human grasp pose, with a person's closure and jitter."""
    from deft_hand_driver.mano import POSE_JOINTS, ManoModel
    if name not in HUMAN_POSES:
        raise ValueError(f'unknown human pose {name!r}; known: {", ".join(HUMAN_POSES)}')
    angles = {}
    for k, joint in enumerate(POSE_JOINTS):
        flex, abd, twist = HUMAN_POSES[name].get(joint, (0.0, 0.0, 0.0))
        if person is not None:
            flex = flex * person.closure + person.flex_noise[k]
        angles[joint] = (flex, abd, twist)
    return ManoModel().pose_from_anatomical(angles)


def _frame(x_axis, z_axis) -> np.ndarray:
    """Return the quaternion of the frame with the given +x and +z axes (base, orthogonalised)."""
    z = np.asarray(z_axis, dtype=float)
    z = z / np.linalg.norm(z)
    x = np.asarray(x_axis, dtype=float)
    x = x - (x @ z) * z
    x = x / np.linalg.norm(x)
    return rotations.from_matrix(np.column_stack([x, np.cross(z, x), z]))


class DemoGenerator:
    """Generates a task's human demonstration clips in the MuJoCo twin (module docstring)."""

    def __init__(self, task: str, settings: Optional[DemoSettings] = None, hand_config=None):
        from deft_sim.mujoco_world import MujocoSettings, MujocoWorld, camera_from_fovy
        from deft_sim.tasks import task_spec
        self.spec = task_spec(task)
        self.task = task
        self.s = settings or DemoSettings()
        camera = camera_from_fovy(self.s.width, self.s.height, 46.8)
        self.world = MujocoWorld(camera, Transform.from_list(CAMERA_TO_BASE),
                                 hand_config or load_hand(),
                                 MujocoSettings(task=task, home_pose=ROBOT_PARK),
                                 extra_bodies=human_hand_xml() + distractors_xml())
        self._model = None
        self._renderer = None
        self._task_key = sorted(HUMAN_GRASPS).index(task)

    def close(self) -> None:
        """Free the renderers."""
        if self._renderer is not None:
            r, self._renderer = self._renderer, None
            r.close()
        self.world.close()

    # --- the compiled model (the world compiles anew when the instance changes) ----------
    def _bind(self) -> None:
        import mujoco
        m = self.world.model
        if m is self._model:
            return
        if self._renderer is not None:
            self._renderer.close()
        self._model = m
        self.hand = HumanHand(m)
        self._renderer = mujoco.Renderer(m, self.s.height, self.s.width)
        self._obj_body = m.body(self.world.s.obj).id
        self.object_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] == self._obj_body}
        self.hand_geoms = set(self.hand.geoms.tolist())
        self._distractors = [(kind, m.body_mocapid[m.body(f'distractor_{kind}_{k}').id],
                              m.geom(f'distractor_{kind}_{k}').id)
                             for k in range(N_DISTRACTORS) for kind in ('box', 'cylinder')]
        self._lights = [m.light(n).id for n in ('sun', 'fill')]
        self._light0 = (m.light_pos[self._lights].copy(), m.light_diffuse[self._lights].copy())
        if self.world.s.obj == 'drawer':
            self._qadr = m.jnt_qposadr[m.joint('drawer_slide').id]
        else:
            self._qadr = m.jnt_qposadr[m.joint(f'{self.world.s.obj}_free').id]
        self._material = [m.jnt_qposadr[m.joint(f'material_{i}_free').id]
                          for i in range(self.world.s.material.count)] \
            if self.task == 'pour_cup' else []

    # --- draws ----------------------------------------------------------------------------
    def person(self, rng: np.random.Generator) -> Person:
        """Draw a person: hand size, wrist turn, closure, flexion noise, contact, skin."""
        s = self.s
        jitter = rng.normal(0.0, s.wrist_jitter, 3)
        angle = float(np.linalg.norm(jitter))
        if angle > np.radians(20.0):
            jitter *= np.radians(20.0) / angle
        return Person(float(rng.uniform(*s.hand_scale)), tuple(jitter.tolist()),
                      float(rng.uniform(*s.closure)),
                      tuple(rng.normal(0.0, s.flex_jitter, 15).tolist()),
                      tuple(rng.uniform(-1.0, 1.0, 3).tolist()),
                      tuple(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]))

    def _scene(self, rng: np.random.Generator) -> None:
        """Vary the table colour, the lights and the distractors of the clip."""
        m, d, w = self._model, self.world.data, self.world
        base = np.array(TABLE_COLOURS[int(rng.integers(len(TABLE_COLOURS)))])
        m.geom_rgba[m.geom('table').id, :3] = np.clip(base + rng.uniform(-0.05, 0.05, 3), 0, 1)
        pos0, diffuse0 = self._light0
        m.light_pos[self._lights] = pos0 + rng.uniform(-0.3, 0.3, pos0.shape)
        tint = rng.uniform(0.9, 1.1, 3)
        m.light_diffuse[self._lights] = np.clip(
            diffuse0 * rng.uniform(0.6, 1.4, (2, 1)) * tint, 0.0, 1.0)
        # the object's footprint and what stands near it (bowl, dish, pot, cabinet) to avoid
        keep_out = [(w.object_pose()[0][:2], 0.25 if w.s.obj == 'drawer' else 0.15)]
        for p in (w.bowl_position(), w.container_position()):
            if p is not None:
                keep_out.append((p[:2], 0.14))
        count = int(rng.integers(0, N_DISTRACTORS + 1))
        slots = list(range(len(self._distractors)))
        rng.shuffle(slots)
        used = []
        for _kind, mocap, _gid in self._distractors:
            d.mocap_pos[mocap] = DISTRACTOR_PARK
        for slot in slots[:count]:
            kind, mocap, gid = self._distractors[slot]
            if kind == 'box':
                half = rng.uniform(0.015, 0.045, 3)
                m.geom_size[gid] = half
                m.geom_rbound[gid] = float(np.linalg.norm(half))
                height = half[2]
            else:
                r, h = rng.uniform(0.015, 0.035), rng.uniform(0.025, 0.07)
                m.geom_size[gid, :2] = (r, h)
                m.geom_rbound[gid] = float(np.hypot(r, h))
                height = h
            m.geom_rgba[gid, :3] = DISTRACTOR_COLOURS[int(rng.integers(len(DISTRACTOR_COLOURS)))]
            for _ in range(30):  # a free spot on the table, else it stays parked
                xy = rng.uniform((0.25, -0.4), (0.8, 0.4))
                if all(np.linalg.norm(xy - c) > r0 for c, r0 in keep_out + used):
                    d.mocap_pos[mocap] = (xy[0], xy[1], height)
                    d.mocap_quat[mocap] = rotations.from_rotvec(
                        [0, 0, rng.uniform(-np.pi, np.pi)])[[3, 0, 1, 2]]
                    used.append((xy, 0.1))
                    break

    def viewpoint(self, rng: np.random.Generator) -> Viewpoint:
        """Draw a viewpoint looking at the object's centre (not the robot's camera)."""
        centre = self.world.object_points().mean(axis=0)
        return Viewpoint(tuple(centre.tolist()), float(rng.uniform(*self.s.azimuth)),
                         float(rng.uniform(*self.s.elevation)),
                         float(rng.uniform(*self.s.distance)),
                         float(self._model.vis.global_.fovy))

    # --- the grasp and the motion -----------------------------------------------------------
    def grasp(self, person: Person, pose: np.ndarray
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """
        Return the person's grasp of the object as it is now.

        The wrist position (m, base), orientation (x y z w, base), the
        approach direction (unit, base: the hand moves along it into the grasp), the approach
        distance (m) and the pre-shape (fraction of the grasp pose while approaching).
        """
        w = self.world
        centre, q_obj = w.object_pose()
        scale = np.asarray(w.object_scale())
        jit = np.asarray(HUMAN_GRASPS[self.task][2]) * self.s.contact_jitter \
            * np.asarray(person.contact)
        site_kind = HUMAN_GRASPS[self.task][1]
        x_obj = rotations.rotate(q_obj, [1.0, 0.0, 0.0])
        up = np.array([0.0, 0.0, 1.0])
        if self.task in ('pick_cup', 'pour_cup'):
            cup = w.cup
            # the side facing the person (base -x), turned by the jitter's angle round the cup
            angle = np.pi + jit[0]
            inward = -np.array([np.cos(angle), np.sin(angle), 0.0])
            height = -0.025 * scale[2] + jit[2]  # below the cup's middle
            target = centre + (-inward) * (cup.radius + 0.004) + height * up
            # fingers round the cup slanting 30 deg down (the thumb below the rim), index up
            fingers = -np.cos(0.5) * np.cross(up, inward) - np.sin(0.5) * up
            q = _frame(fingers, inward)
            approach, distance, preshape = inward, 0.10, 0.0
        elif self.task == 'open_drawer':
            dr = w.s.drawer
            into = x_obj
            target = centre + rotations.rotate(q_obj, [-dr.handle_standoff, jit[1], dr.handle_z])
            q = _frame(into, -up)  # palm down, fingers over the bar into the cabinet
            approach = into * 0.6 - up * 0.8
            approach, distance, preshape = approach / np.linalg.norm(approach), 0.08, 0.6
        else:  # the spoon's or the ladle's handle, its rear half, from above
            along = {'pick_spoon': -0.028, 'scoop_grape': -0.02, 'stir_spoon': -0.02}[self.task]
            target = centre + rotations.rotate(q_obj, [(along + jit[0]) * scale[0], 0.0, 0.0])
            across = np.cross(up, x_obj)
            across = across if across[0] >= 0 else -across  # fingers away from the person
            # palm down, the little-finger side raised 23 deg (the curled fingers clear)
            q = rotations.multiply(_frame(across, -up), rotations.from_rotvec([-0.4, 0.0, 0.0]))
            approach, distance, preshape = -up, 0.08, 0.2
        q = rotations.normalize(rotations.multiply(rotations.from_rotvec(person.wrist_jitter), q))
        kp = person.scale * self.hand.mano.forward(np.zeros(3), pose)  # wrist frame, scaled
        if site_kind == 'palm':
            site = np.array([0.065, 0.007, self.hand.geometry.palm_half[2]]) * person.scale
        elif site_kind == 'pinch':
            site = 0.5 * (kp[16] + kp[20])  # index and thumb tips
        else:
            site = kp[[4, 5, 6, 17]].mean(axis=0)  # inside the middle finger's hook
        wrist = target - rotations.rotate(q, site)
        return wrist, q, approach, distance, preshape

    def motion(self) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """
        Return the task's object motion after the grasp, and its pivot.

        Waypoints (translation m, rotation vector rad; base axes) of the rigid motion
        x -> pivot + R (x - pivot) + t.
        """
        w = self.world
        centre, q_obj = w.object_pose()
        z = np.zeros(3)
        if self.task in ('pick_cup', 'pick_spoon'):
            pts = [(0, 0, 0.06), (0, 0, 0.12), (-0.04, -0.06, 0.13), (-0.05, -0.12, 0.12)]
            return [(np.array(p, float), z) for p in pts], centre
        if self.task == 'pour_cup':
            to_bowl = (w.bowl_position() - centre)[:2] * 0.45
            lift = np.array([0.0, 0.0, 0.10])
            carry = np.array([to_bowl[0], to_bowl[1], 0.10])
            out = [(lift, z), (carry, z)]
            for a, dz in zip((0.7, 1.4, 2.1), (0.095, 0.09, 0.08)):
                out.append((np.array([carry[0], carry[1] - 0.01, dz]), np.array([a, 0.0, 0.0])))
            return out, centre
        if self.task == 'open_drawer':
            out_dir = -rotations.rotate(q_obj, [1.0, 0.0, 0.0])
            return [(out_dir * s, z) for s in (0.04, 0.08, 0.12, 0.14)], centre
        along = rotations.rotate(q_obj, [1.0, 0.0, 0.0])
        tip = w.tip_position()
        if self.task == 'scoop_grape':
            axis = np.cross(along, [0.0, 0.0, 1.0])
            turn = axis / np.linalg.norm(axis) * 0.4  # the tip up
            push = along * 0.04
            return [(push * 0.5, z), (push, z), (push + [0, 0, 0.01], turn),
                    (push + [0, 0, 0.06], turn), (push + [0, 0, 0.10], turn)], tip
        # stir: lift, the tray over the pot, down into it, 1.25 turns of a 3 cm circle, out
        pot = w.container_position()
        over = np.array([pot[0] - tip[0], pot[1] - tip[1], 0.07])
        out = [(np.array([0.0, 0.0, 0.07]), z), (over, z)]
        for a in np.linspace(0.0, 2.5 * np.pi, 16):
            out.append((over + [0.03 * np.cos(a), 0.03 * np.sin(a), 0.025 - 0.07], z))
        out.append((over + [0.0, 0.0, 0.02], z))
        return out, tip

    # --- a clip ---------------------------------------------------------------------------
    def _set_object(self, start: np.ndarray, t: np.ndarray, r: np.ndarray,
                    pivot: np.ndarray, material: np.ndarray) -> None:
        """Move the object (and the pour's material) by the rigid motion (t, r) about pivot."""
        d = self.world.data
        if self.world.s.obj == 'drawer':
            d.qpos[self._qadr] = float(np.linalg.norm(t))
            return
        q = rotations.from_rotvec(r)
        pos = pivot + rotations.rotate(q, start[:3] - pivot) + t
        quat = rotations.multiply(q, start[[4, 5, 6, 3]])  # MuJoCo w x y z -> x y z w
        d.qpos[self._qadr:self._qadr + 3] = pos
        d.qpos[self._qadr + 3:self._qadr + 7] = quat[[3, 0, 1, 2]]
        for adr, p in zip(self._material, material):
            d.qpos[adr:adr + 3] = pivot + rotations.rotate(q, p - pivot) + t

    def _contacts(self) -> np.ndarray:
        """Return the positions (n, 3; m, base) of the hand-object contacts now."""
        d = self.world.data
        out = []
        for i in range(d.ncon):
            c = d.contact[i]
            pair = {int(c.geom1), int(c.geom2)}
            if pair & self.hand_geoms and pair & self.object_geoms:
                out.append(c.pos.copy())
        return np.array(out).reshape(-1, 3)

    def _render(self, viewpoint: Viewpoint) -> np.ndarray:
        import mujoco
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = viewpoint.lookat
        cam.azimuth, cam.elevation = viewpoint.azimuth, viewpoint.elevation
        cam.distance = viewpoint.distance
        self._renderer.update_scene(self.world.data, camera=cam)
        return self._renderer.render().copy()

    def clip(self, index: int, seed: int = 0, render_frames: bool = False) -> Optional[Clip]:
        """
        Generate clip `index` (fully determined by seed, index) of a train configuration.

        None if the hand never touches the object (a clip the contact detector would drop).
        """
        import mujoco

        from deft_sim.mujoco_world import camera_from_fovy
        w, s = self.world, self.s
        config_seed = seed * 1_000_003 + index
        w.reset(config_seed, 'train')
        self._bind()
        m, d = self._model, w.data
        rng = np.random.default_rng([seed, 17, self._task_key, index])
        split = 'val' if np.random.default_rng([seed, 11, self._task_key, index]).random() \
            < s.val_fraction else 'train'
        person = self.person(rng)
        self.hand.apply_scale(person.scale)
        self.hand.set_skin(person.skin)
        self._scene(rng)
        view = self.viewpoint(rng)
        camera = camera_from_fovy(s.width, s.height, view.fovy)
        cam_pose = view.camera_to_base()
        robot_contact = self.spec.contacts_in(w).mean(axis=0)
        # the first frame without the hand: the crop's image
        self.hand.hide(d)
        mujoco.mj_forward(m, d)
        hidden = self._render(view)
        def project(points):
            return camera.project(cam_pose.inverse().apply(points))

        box = crop_box(project(w.object_points()), s.margin)
        crop = cut(hidden, box, s.size)
        # the frames: approach, close, move
        pose = human_pose(HUMAN_GRASPS[self.task][0], person)
        wrist, q, approach, dist, pre = self.grasp(person, pose)
        states = []  # (wrist, quat, pose, object motion or None)
        n_a = s.approach_frames
        for k in range(n_a):
            states.append((wrist - approach * dist * (1.0 - k / (n_a - 1)), q, pre * pose, None))
        for k in range(1, s.close_frames + 1):
            states.append((wrist, q, (pre + (1.0 - pre) * k / s.close_frames) * pose, None))
        waypoints, pivot = self.motion()
        last_t, last_r = np.zeros(3), np.zeros(3)
        for t, r in waypoints:
            n = max(1, int(np.ceil(max(np.linalg.norm(t - last_t) / s.step,
                                       np.linalg.norm(r - last_r) / s.turn_step))))
            for k in range(1, n + 1):
                tk = last_t + (t - last_t) * k / n
                rk = rotations.to_rotvec(rotations.slerp(rotations.from_rotvec(last_r),
                                                         rotations.from_rotvec(r), k / n))
                qk = rotations.from_rotvec(rk)
                states.append((pivot + rotations.rotate(qk, wrist - pivot) + tk,
                               rotations.multiply(qk, q), pose, (tk, rk)))
            last_t, last_r = t, r
        obj_start = d.qpos[self._qadr:self._qadr + 7].copy()
        material = np.array([d.qpos[a:a + 3] for a in self._material]).reshape(-1, 3)
        contacts, frames = [], [] if render_frames else None
        for p, qq, pz, move in states:
            self.hand.set_pose(d, p, qq, pz)
            if move is not None:
                self._set_object(obj_start, move[0], move[1], pivot, material)
            mujoco.mj_forward(m, d)
            contacts.append(self._contacts())
            if render_frames:
                frames.append(self._render(view))
        touching = [i for i, c in enumerate(contacts) if len(c)]
        if not touching or touching[0] == 0:
            return None
        c = touching[0]
        pixels = to_crop(project(contacts[c]), box, s.size)
        centres = np.clip(gmm_centres(pixels, s.components), -0.5, s.size - 0.5)
        optical = rotations.normalize(rotations.multiply(
            rotations.conjugate(cam_pose.rotation), states[c][1]))
        inst = w.instance.name if w.instance is not None else 'nominal'
        return Clip(self.task, index, config_seed, split, inst, person, view,
                    np.array([st[0] for st in states]), np.array([st[1] for st in states]),
                    np.array([st[2] for st in states]), contacts, c, crop, box, centres,
                    optical, np.asarray(states[c][2]), robot_contact, frames,
                    obj_start[:3].copy())


def manifest_line(clip: Clip, name: str, clip_id: int, text: str) -> dict:
    """Return the manifest line of a clip (deft_affordance.dataset's format plus provenance)."""
    return {
        'crop': name, 'task': text,
        'contact_points': np.round(clip.contact_points, 3).tolist(),
        'wrist_rotation': [round(float(v), 6) for v in clip.wrist_optical],
        'hand_pose': [round(float(v), 5) for v in clip.hand_pose],
        'split': clip.split, 'clip': f'{clip_id:06d}', 'contact_frame': clip.contact_frame,
        'frames': len(clip.wrists), 'person': clip.person.summary(), 'instance': clip.instance,
        'seed': clip.seed, 'sim_task': clip.task, 'viewpoint': clip.viewpoint.summary(),
        'contact_base': np.round(clip.contact_base, 5).tolist(),
        'robot_contact_base': np.round(clip.robot_contact, 5).tolist()}


def tau_entry(clip: Clip, clip_id: int, spec) -> dict:
    """Return the taus.json entry of a task from its demonstration clip."""
    offsets, turns = clip.tau()
    steps = np.linalg.norm(np.diff(offsets, axis=0), axis=1)
    return {'tau': np.round(offsets, 5).ravel().tolist(),
            'tau_rotations': np.round(turns, 5).ravel().tolist(),
            'waypoints': len(offsets), 'path_length_m': round(float(steps.sum()), 4),
            'clip': f'{clip_id:06d}', 'seed': clip.seed, 'contact_frame': clip.contact_frame,
            'frame': 'MANO wrist offsets from the wrist at the contact frame (m, base_link '
                     'axes, x y z triples; the first is the contact); tau_rotations: rotation '
                     'vectors (rad, base axes), q = exp(r) q_contact',
            'robot_tau': list(spec.tau), 'robot_tau_rotations': list(spec.tau_rotations)}


def write_dataset(out: str, tasks: Sequence[str], n: int, seed: int = 0,
                  settings: Optional[DemoSettings] = None, save_frames: bool = False,
                  progress=None) -> Path:
    """
    Write n clips per task to `out`; return its path.

    manifest.jsonl, crops/, taus.json, settings.json and (save_frames) clips/<clip>/frames.
    Clips in which the hand never touches the object are skipped (reported to `progress`).
    """
    from PIL import Image

    from deft_sim.tasks import task_spec
    s = settings or DemoSettings()
    root = Path(out)
    (root / 'crops').mkdir(parents=True, exist_ok=True)
    lines, taus, clip_id = [], {}, 0
    for task in tasks:
        spec = task_spec(task)
        gen = DemoGenerator(task, s)
        try:
            for i in range(n):
                start = time.monotonic()
                clip = gen.clip(i, seed, render_frames=save_frames)
                if clip is None:
                    if progress is not None:
                        progress(task, i, n, None, time.monotonic() - start)
                    continue
                name = f'crops/{clip_id:06d}.png'
                Image.fromarray(clip.crop).save(root / name)
                if save_frames:
                    folder = root / 'clips' / f'{clip_id:06d}'
                    folder.mkdir(parents=True, exist_ok=True)
                    for k, frame in enumerate(clip.frames):
                        Image.fromarray(frame).save(folder / f'frame_{k:03d}.png')
                lines.append(json.dumps(manifest_line(clip, name, clip_id, spec.text)))
                if task not in taus:
                    taus[task] = tau_entry(clip, clip_id, spec)
                if progress is not None:
                    progress(task, i, n, clip, time.monotonic() - start)
                clip_id += 1
        finally:
            gen.close()
    _atomic(root / 'manifest.jsonl', '\n'.join(lines) + '\n')
    _atomic(root / 'taus.json', json.dumps(taus, indent=1) + '\n')
    (root / 'settings.json').write_text(json.dumps(
        {'seed': seed, 'n': n, 'tasks': list(tasks), **asdict(s)}, indent=1) + '\n')
    return root


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line tool (see the module docstring); return the exit status."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    parser = argparse.ArgumentParser(
        prog='deft_sim_labels',
        description="Generate simulated human demonstration clips of the twin's tasks and "
                    'label them as videos are labelled (affordance dataset format).')
    parser.add_argument('--task', required=True, choices=sorted(HUMAN_GRASPS) + ['all'])
    parser.add_argument('--n', type=int, default=20, help='clips per task')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=128, help='crop side, px')
    parser.add_argument('--width', type=int, default=224, help='frame width, px')
    parser.add_argument('--height', type=int, default=168, help='frame height, px')
    parser.add_argument('--val-fraction', type=float, default=0.15)
    parser.add_argument('--components', type=int, default=3,
                        help='at most this many contact points (mixture centres) per clip')
    parser.add_argument('--frames', action='store_true',
                        help='also save every frame as clips/<clip>/frame_<k>.png')
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error('--n must be >= 1')
    if args.seed < 0:
        parser.error('--seed must be >= 0')
    try:
        settings = DemoSettings(size=args.size, width=args.width, height=args.height,
                                val_fraction=args.val_fraction, components=args.components)
    except ValueError as exc:
        parser.error(str(exc))
    tasks = sorted(HUMAN_GRASPS) if args.task == 'all' else [args.task]

    def progress(task, i, n, clip, seconds):
        if clip is None:
            print(f'{task}: clip {i + 1}/{n}: the hand never touched the object; skipped',
                  flush=True)
        else:
            print(f'{task}: clip {i + 1}/{n} ({clip.split}, {clip.instance}): contact at frame '
                  f'{clip.contact_frame}/{len(clip.wrists)}, {seconds:.2f} s', flush=True)
    try:
        root = write_dataset(args.out, tasks, args.n, args.seed, settings, args.frames,
                             progress)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {root / "manifest.jsonl"} and {root / "taus.json"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
