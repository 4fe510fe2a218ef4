"""
The `fake` simulated world: a kinematic tabletop (no physics), honest about what it is.

One upright box on a table (plane z = 0 of base_link), seen by a pinhole RGB-D camera rendered by
exact ray casting. The box becomes held when the hand is closed (closure >= grasp_closure) with
the palm point within grasp_tolerance of the box's grasp region (the segment from its centre to
its top centre); a held box follows the wrist rigidly, and drops straight onto the table when the
hand opens. Contact forces, friction and the wrist orientation play no part: a grasp at the wrong
place fails, a grasp with the wrong rotation does not (that needs a physics backend).
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform

SPLITS = {  # placement regions of the box centre, base_link, metres: (x range, y ranges)
    'train': ((0.40, 0.60), ((-0.12, 0.12),)),
    'test': ((0.40, 0.60), ((-0.20, -0.13), (0.13, 0.20))),
}
TABLE = ((0.0, 1.0), (-0.6, 0.6))  # table top extent x, y; beyond it the floor
FLOOR_Z = -0.75


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of an undistorted pinhole camera, pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def rays(self) -> np.ndarray:
        """Return (H, W, 3) ray directions in the optical frame with z = 1 (pixel centres)."""
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy,
                         np.ones(u.shape)], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project optical-frame points (N, 3) to pixels (N, 2)."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx,
                         self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)


@dataclass
class WorldSettings:
    """Geometry and grasp rules of the world."""

    object_size: Tuple[float, float, float] = (0.06, 0.06, 0.10)
    grasp_tolerance: float = 0.03
    grasp_closure: float = 0.6
    release_closure: float = 0.3
    palm_offset: float = 0.0
    lift_target: float = 0.10
    shaping_distance: float = 0.15


@dataclass
class _State:
    position: np.ndarray
    orientation: np.ndarray
    held_offset: Optional[Transform] = None
    closest: float = np.inf
    seed: int = 0
    split: str = 'train'
    noise: np.ndarray = field(default_factory=lambda: np.zeros(0))


def sample_placement(seed: int, split: str) -> Tuple[float, float, float, np.random.Generator]:
    """
    Draw an object placement (x, y in m, yaw in rad, base frame) of a split, from a seed.

    Return the generator too, for anything else the scene draws after the object (a bowl).
    """
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {", ".join(SPLITS)}')
    rng = np.random.default_rng(seed)
    xr, yranges = SPLITS[split]
    yr = yranges[rng.integers(len(yranges))]
    x, y = rng.uniform(*xr), rng.uniform(*yr)
    return float(x), float(y), float(rng.uniform(-np.pi, np.pi)), rng


class TabletopWorld:
    """The kinematic tabletop with one box."""

    def __init__(self, camera: PinholeCamera, camera_to_base: Transform,
                 settings: Optional[WorldSettings] = None):
        self.camera, self.camera_to_base = camera, camera_to_base
        self.s = settings or WorldSettings()
        self.half = np.asarray(self.s.object_size, dtype=float) / 2.0
        if self.half.shape != (3,) or np.any(self.half <= 0):
            raise ValueError('object_size needs three positive values (m)')
        self._rays = self.camera.rays()
        self._texture = np.random.default_rng(1234).normal(0, 6, (camera.height, camera.width))
        self.reset(0, 'train')

    # --- placement -------------------------------------------------------------------
    def reset(self, seed: int, split: str = 'train') -> None:
        """Place the box anew: the same seed and split give the same placement."""
        x, y, yaw, _ = sample_placement(seed, split)
        self.state = _State(np.array([x, y, self.half[2]]),
                            rotations.from_rotvec([0.0, 0.0, yaw]), seed=seed, split=split)

    def object_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the box centre (m) and orientation (quaternion), base frame."""
        return self.state.position.copy(), self.state.orientation.copy()

    @property
    def held(self) -> bool:
        """Return whether the hand holds the box."""
        return self.state.held_offset is not None

    # --- grasp kinematics ------------------------------------------------------------
    def grasp_distance(self, palm: np.ndarray) -> float:
        """Return the distance of a point to the grasp region (centre -> top centre segment)."""
        centre = self.state.position
        top = centre + rotations.rotate(self.state.orientation, [0.0, 0.0, self.half[2]])
        seg = top - centre
        t = float(np.clip(np.dot(palm - centre, seg) / np.dot(seg, seg), 0.0, 1.0))
        return float(np.linalg.norm(palm - (centre + t * seg)))

    def update(self, wrist_position, wrist_orientation, closure: float) -> None:
        """Advance the kinematics with the latest wrist pose and hand closure (0 open .. 1)."""
        wrist = Transform(np.asarray(wrist_position, dtype=float),
                          rotations.normalize(wrist_orientation))
        st = self.state
        palm = wrist.apply([0.0, 0.0, self.s.palm_offset])
        if st.held_offset is None:
            d = self.grasp_distance(palm)
            st.closest = min(st.closest, d)
            if closure >= self.s.grasp_closure and d <= self.s.grasp_tolerance:
                inv = wrist.inverse()
                st.held_offset = Transform(inv.apply(st.position),
                                           rotations.multiply(inv.rotation, st.orientation))
        elif closure < self.s.release_closure:
            st.held_offset = None
            st.position = np.array([st.position[0], st.position[1], self.half[2]])
            yaw = np.arctan2(*rotations.rotate(st.orientation, [1.0, 0.0, 0.0])[[1, 0]])
            st.orientation = rotations.from_rotvec([0.0, 0.0, yaw])
        if st.held_offset is not None:
            st.position = wrist.apply(st.held_offset.translation)
            st.orientation = rotations.normalize(
                rotations.multiply(wrist.rotation, st.held_offset.rotation))
            st.position[2] = max(st.position[2], self.half[2])  # never through the table

    def task_reward(self) -> Tuple[float, bool]:
        """
        Return (reward in [0, 1], success) of a pick/lift task.

        Held: 0.3 + 0.7 * lift / lift_target (capped); not held: up to 0.3 as the palm came
        closer to the grasp region during the episode, so the optimiser has a slope to follow.
        Success: held and lifted by lift_target.
        """
        lift = float(self.state.position[2] - self.half[2])
        if self.held:
            frac = float(np.clip(lift / self.s.lift_target, 0.0, 1.0))
            return 0.3 + 0.7 * frac, lift >= self.s.lift_target - 1e-6
        closeness = 1.0 - self.state.closest / self.s.shaping_distance
        return 0.3 * float(np.clip(closeness, 0.0, 1.0)), False

    # --- rendering -------------------------------------------------------------------
    def render(self, object_pose=None) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (rgb uint8 H x W x 3, depth float32 H x W in metres along the optical axis).

        `object_pose` (position, orientation) renders a snapshot taken earlier (default: now).
        """
        position, orientation = object_pose or self.object_pose()
        rot = rotations.to_matrix(self.camera_to_base.rotation)
        origin = self.camera_to_base.translation
        dirs = self._rays @ rot.T  # base frame, optical z component = 1 per unit t
        h, w = self.camera.height, self.camera.width
        depth = np.full((h, w), np.inf)
        rgb = np.zeros((h, w, 3))
        # the table top, or the floor beyond it
        with np.errstate(divide='ignore', invalid='ignore'):
            t_table = -origin[2] / dirs[..., 2]
            hit = origin[:2] + t_table[..., None] * dirs[..., :2]
            (x0, x1), (y0, y1) = TABLE
            on_table = (t_table > 0) & (hit[..., 0] >= x0) & (hit[..., 0] <= x1) \
                & (hit[..., 1] >= y0) & (hit[..., 1] <= y1)
            t_floor = (FLOOR_Z - origin[2]) / dirs[..., 2]
        depth[on_table] = t_table[on_table]
        rgb[on_table] = [150, 122, 92]
        rgb[on_table] += self._texture[on_table][:, None]
        floor = ~on_table & (t_floor > 0)
        depth[floor] = t_floor[floor]
        rgb[floor] = [70, 70, 75]
        # the box: slab test in its own frame
        r_obj = rotations.to_matrix(orientation)
        o = (origin - position) @ r_obj
        d = dirs @ r_obj
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (-self.half - o) / d
            t2 = (self.half - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        box = (t_near <= t_far) & (t_near > 0) & (t_near < depth)
        depth[box] = t_near[box]
        face = np.argmax(np.minimum(t1, t2)[box], axis=-1)  # axis of the entry face
        normal_obj = np.zeros((face.size, 3))
        normal_obj[np.arange(face.size), face] = -np.sign(d[box][np.arange(face.size), face])
        light = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
        shade = 0.35 + 0.65 * np.clip((normal_obj @ r_obj.T) @ light, 0.0, 1.0)
        rgb[box] = np.array([205.0, 35.0, 30.0]) * shade[:, None]
        depth[~np.isfinite(depth)] = np.nan
        return np.clip(rgb, 0, 255).astype(np.uint8), depth.astype(np.float32)
