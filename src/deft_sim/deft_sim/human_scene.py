"""
What the simulated human demonstrations vary and share: scenes, people, viewpoints, clips.

The settings of the generator (DemoSettings), a clip's person (hand size, skin, grasp and wrist
jitter), viewpoint and labelled result (Person, Viewpoint, Clip), the people's grasps per task
(HUMAN_GRASPS, HUMAN_POSES), the 2-D Gaussian mixture that summarises contacts (gmm_centres) and
the scene's distractors. deft_sim.human_demos renders and labels the clips, deft_sim.human_dataset
writes them as an affordance data set.
"""


from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform
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
