"""
The `sim` world: a MuJoCo tabletop with a physically simulated 16-DOF hand and a task object.

Same public API as the kinematic world (kinematic_world.TabletopWorld): reset(seed, split),
update(wrist position, wrist quaternion, hand), task_reward(), held, render(), object_pose(),
camera / camera_to_base, so the sim node can choose the backend by a parameter.

How the robot is modelled:
- The wrist is a mocap body welded (soft weld, WELD_SOLREF) to the free body 'palm' that
  carries the hand. The arm's 6-DOF kinematics are not what DEFT learns (it tunes grasp
  parameters: contact point, wrist orientation, hand pose), so the arm is left out; the weld is
  a spring-damper, not a kinematic attachment, and the mocap target is kept at most
  `max_wrist_lead` from the palm, which bounds the force the "arm" applies: the table or the cup
  blocks the hand instead of being pushed through. The hand bodies are gravity compensated
  (as a real arm controller compensates its payload).
- The 16 hand joints are position servos with stiffness kp and a torque limit (HandGeometry):
  fingers stop at the object and press with a bounded torque.
- The grasp is contact and friction only: nothing welds or attaches the cup to the hand.

Task "pick up the cup": success = the cup lifted by lift_target above its resting height,
upright within max_tilt, touched by at least two parts of the hand (palm, index, middle, ring,
thumb) and not by the table. Reward in [0, 1]: touched by the hand: 0.3 + 0.7 * lift fraction
(lift / lift_target, capped) * uprightness (1 up to max_tilt, falling linearly to 0 at twice
that: a cup knocked over and dragged up on its side earns little); not touched: up to 0.3 as the
palm came closer to the cup's grasp region (its axis from centre to top) during the episode.

Task "pour from the cup" (task='pour_cup'): a static bowl stands beside the cup (seeded, 15-20 cm
towards the table's centre line). Success = the cup held (as above), lifted by lift_target,
tilted by at least pour_tilt, its mouth within the bowl's radius of the bowl's centre
(horizontally). Reward when touched: 0.3 + 0.7 * lift fraction * (tilt fraction + over-bowl
fraction) / 2; not touched: the same approach shaping as the pick task.

Task "pick up the spoon" (task='pick_spoon'): a thin spoon (flat handle + shallow bowl) lies on
a knife rest (two posts, SpoonGeometry.rest_height above the table) at the seeded placement and
yaw. Success = the spoon lifted by lift_target above its rest, touched by at least two hand parts
and by neither the rest nor the table. Reward: touched: 0.3 + 0.7 * lift fraction; not touched:
up to 0.3 as the palm came closer to the handle.

Task "open the drawer" (task='open_drawer'): a cabinet whose drawer runs on a damped slide joint
with dry friction; a bar handle stands off its front. The drawer front's centre is at the seeded
(x, y) on the table, the cabinet faces the robot (-x), its yaw the seeded yaw scaled to
+-max_cabinet_yaw. Reward = opened fraction (slide travel / full travel, in [0, 1]); success =
opened fraction >= drawer_success. Pushing cannot open it: the hand has to hook the handle.

Every task's object is placed by kinematic_world.sample_placement(seed, split) (SPLITS).
"""

from dataclasses import dataclass
import time
from typing import Callable, Optional, Sequence, Tuple, Union

import mujoco
import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform
from deft_hand_driver.hand_config import HandConfig
from deft_sim import mujoco_models as mm
from deft_sim.kinematic_world import PinholeCamera, sample_placement

TASKS = ('pick_cup', 'pour_cup', 'pick_spoon', 'open_drawer')
OBJECT_OF_TASK = {'pick_cup': 'cup', 'pour_cup': 'cup', 'pick_spoon': 'spoon',
                  'open_drawer': 'drawer'}


@dataclass(frozen=True)
class MujocoSettings:
    """Task, placement and robot-model settings of the MuJoCo world."""

    lift_target: float = 0.10
    max_tilt: float = np.radians(30.0)  # rad: a lifted cup tilted further is not a success
    shaping_distance: float = 0.15
    task: str = 'pick_cup'  # one of TASKS
    pour_tilt: float = np.radians(100.0)  # rad: the cup's mouth points below the horizontal
    bowl_distance: Tuple[float, float] = (0.15, 0.20)  # m: cup-to-bowl distance range (y)
    max_wrist_lead: float = 0.03  # m: bounds the weld's pull (the arm's force limit)
    max_update_dt: float = 0.1  # s: longest physics advance of one update() on the wall clock
    home_pose: Tuple[float, ...] = (0.35, 0.0, 0.35, 1.0, 0.0, 0.0, 0.0)  # palm down, as deft_arm
    hand: mm.HandGeometry = mm.HandGeometry()
    cup: mm.CupGeometry = mm.CupGeometry()
    bowl: mm.BowlGeometry = mm.BowlGeometry()
    spoon: mm.SpoonGeometry = mm.SpoonGeometry()
    drawer: mm.DrawerGeometry = mm.DrawerGeometry()
    drawer_success: float = 0.6  # opened fraction of a successful open_drawer
    max_cabinet_yaw: float = np.radians(10.0)  # rad: the cabinet's yaw range is +- this

    @property
    def obj(self) -> str:
        """Return the name of the task's object body: cup, spoon or drawer."""
        return OBJECT_OF_TASK[self.task]

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r}; expected one of {", ".join(TASKS)}')
        if not np.pi / 4 <= self.pour_tilt <= np.pi:
            raise ValueError('pour_tilt must be in [pi/4, pi] rad')
        if not 0 < self.bowl_distance[0] <= self.bowl_distance[1]:
            raise ValueError('bowl_distance needs 0 < min <= max (m)')
        if not 0 < self.max_tilt < np.pi / 2:
            raise ValueError('max_tilt must be in (0, pi/2) rad')
        if self.lift_target <= 0 or self.shaping_distance <= 0 or self.max_wrist_lead <= 0:
            raise ValueError('lift_target, shaping_distance and max_wrist_lead must be > 0')
        if not 0 < self.drawer_success <= 1 or not 0 <= self.max_cabinet_yaw < np.pi / 4:
            raise ValueError('drawer_success must be in (0, 1], max_cabinet_yaw in [0, pi/4)')
        if self.max_update_dt <= 0:
            raise ValueError('max_update_dt must be > 0')
        if len(self.home_pose) != 7:
            raise ValueError('home_pose needs x y z qx qy qz qw')


def fovy_of(camera: PinholeCamera) -> float:
    """
    Return the vertical field of view (degrees) of a pinhole camera MuJoCo can render exactly.

    MuJoCo's perspective camera has square pixels and the principal point at the image centre,
    so fx == fy, cx == (width - 1) / 2 and cy == (height - 1) / 2 (pixel-centre convention of
    PinholeCamera) are required; anything else is a ValueError.
    """
    if abs(camera.fx - camera.fy) > 1e-6 * camera.fx:
        raise ValueError(f'MuJoCo cameras have square pixels: fx={camera.fx} != fy={camera.fy}')
    if abs(camera.cx - (camera.width - 1) / 2) > 1e-3 or \
            abs(camera.cy - (camera.height - 1) / 2) > 1e-3:
        raise ValueError(f'MuJoCo cameras have a centred principal point: need cx='
                         f'{(camera.width - 1) / 2}, cy={(camera.height - 1) / 2}')
    return float(np.degrees(2.0 * np.arctan(camera.height / 2.0 / camera.fy)))


def camera_from_fovy(width: int, height: int, fovy_deg: float) -> PinholeCamera:
    """Return the true intrinsics of a MuJoCo camera: fx = fy = (height / 2) / tan(fovy / 2)."""
    f = height / 2.0 / np.tan(np.radians(fovy_deg) / 2.0)
    return PinholeCamera(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


class MujocoWorld:
    """The physically simulated tabletop: table, task object, mocap-driven 16-DOF hand, camera."""

    def __init__(self, camera: PinholeCamera, camera_to_base: Transform, hand: HandConfig,
                 settings: Optional[MujocoSettings] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.camera, self.camera_to_base = camera, camera_to_base
        self.hand_config = hand
        self.s = settings or MujocoSettings()
        self.fovy = fovy_of(camera)
        home = Transform.from_list(self.s.home_pose)
        self.xml = mm.build_mjcf(hand.joint_names, hand.lower, hand.upper,
                                 camera_to_base.translation, camera_to_base.rotation, self.fovy,
                                 (camera.width, camera.height), self.s.hand, self.s.cup,
                                 home.translation, home.rotation,
                                 self.s.bowl if self.s.task == 'pour_cup' else None,
                                 self.s.obj, self.s.spoon, self.s.drawer)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._clock = clock
        self._last_update: Optional[float] = None
        self._palm = m.body('palm').id
        self._obj = m.body(self.s.obj).id
        self._mocap = m.body_mocapid[m.body('wrist_target').id]
        self._weld = m.eq('wrist').id
        self._bowl = m.body_mocapid[m.body('bowl').id] if self.s.task == 'pour_cup' else None
        self._obj_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] == self._obj
                           and m.geom_contype[g] | m.geom_conaffinity[g]}
        self._fixture = {'spoon': 'spoon_rest', 'drawer': 'cabinet'}.get(self.s.obj)
        self._fixture_mocap = None if self._fixture is None else \
            m.body_mocapid[m.body(self._fixture).id]
        self._supports = {m.geom('table').id, m.geom('floor').id} | {
            g for g in range(m.ngeom) if self._fixture is not None
            and m.geom_bodyid[g] == m.body(self._fixture).id}
        if self.s.obj == 'drawer':
            self._obj_qadr = m.jnt_qposadr[m.joint('drawer_slide').id]  # the slide's travel
        else:
            self._obj_qadr = m.jnt_qposadr[m.joint(f'{self.s.obj}_free').id]
        self._palm_qadr = m.jnt_qposadr[m.joint('palm_free').id]
        self._hand_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in hand.joint_names])
        self._actuators = np.array([m.actuator(n).id for n in hand.joint_names])
        self._group_of_geom = {}
        for gid in range(m.ngeom):
            name = m.body(m.geom_bodyid[gid]).name
            group = next((g for g in mm.HAND_GROUPS if name.startswith(g)), None)
            if group is not None:
                self._group_of_geom[gid] = group
        self._rest_z = self.s.cup.height / 2.0  # set by reset for every object
        self._target_pos = home.translation.copy()
        self._target_quat = mm.mj_quat(home.rotation)
        self._renderer = None
        self.seed, self.split = 0, 'train'
        self.closest = np.inf
        self.reset(0, 'train')

    # --- placement -------------------------------------------------------------------
    def reset(self, seed: int, split: str = 'train') -> None:
        """Place the object anew, the hand open at home: same seed and split, same scene."""
        x, y, yaw, rng = sample_placement(seed, split)
        d, m = self.data, self.model
        mujoco.mj_resetData(m, d)
        if self._bowl is not None:  # towards the table's centre line, drawn after the cup
            y_bowl = y - np.copysign(rng.uniform(*self.s.bowl_distance), y)
            d.mocap_pos[self._bowl] = (x, y_bowl, self.s.bowl.height / 2.0)
        if self.s.obj == 'drawer':
            yaw *= self.s.max_cabinet_yaw / np.pi
        q_yaw = mm.mj_quat(rotations.from_rotvec([0.0, 0.0, yaw]))
        if self._fixture_mocap is not None:
            d.mocap_pos[self._fixture_mocap] = (x, y, 0.0)
            d.mocap_quat[self._fixture_mocap] = q_yaw
        if self.s.obj == 'drawer':
            d.qpos[self._obj_qadr] = 0.0
            self._rest_z = 0.0
        else:
            self._rest_z = self.s.cup.height / 2.0 if self.s.obj == 'cup' else \
                self.s.spoon.rest_height + self.s.spoon.handle_half[2]
            d.qpos[self._obj_qadr:self._obj_qadr + 3] = (x, y, self._rest_z)
            d.qpos[self._obj_qadr + 3:self._obj_qadr + 7] = q_yaw
        home = Transform.from_list(self.s.home_pose)
        self._target_pos = home.translation.copy()
        self._target_quat = mm.mj_quat(home.rotation)
        d.qpos[self._palm_qadr:self._palm_qadr + 3] = self._target_pos
        d.qpos[self._palm_qadr + 3:self._palm_qadr + 7] = self._target_quat
        d.mocap_pos[self._mocap] = self._target_pos
        d.mocap_quat[self._mocap] = self._target_quat
        open_pose = self.hand_config.pose('open')
        d.qpos[self._hand_qadr] = open_pose
        d.ctrl[self._actuators] = open_pose
        mujoco.mj_forward(m, d)
        self.seed, self.split = seed, split
        self.closest = self.grasp_distance(self.palm_pose()[0])
        self._last_update = None

    def object_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the object's frame: position (m) and orientation (quaternion x, y, z, w), base.

        Cup: its centre. Spoon: the handle's centre, +x towards the bowl. Drawer: the point on
        the table below the drawer front's centre (moving out with the drawer), the cabinet's
        orientation (+x into the cabinet).
        """
        d = self.data
        if self.s.obj == 'drawer':
            pos = d.mocap_pos[self._fixture_mocap]
            quat = mm.ros_quat(d.mocap_quat[self._fixture_mocap])
            out = rotations.rotate(quat, [-self.opened, 0.0, 0.0])
            return pos + out, quat
        q = d.qpos[self._obj_qadr:self._obj_qadr + 7]
        return q[:3].copy(), mm.ros_quat(q[3:])

    @property
    def opened(self) -> float:
        """Return how far the drawer is pulled out (m; 0 for the other objects)."""
        return float(self.data.qpos[self._obj_qadr]) if self.s.obj == 'drawer' else 0.0

    def object_points(self) -> np.ndarray:
        """Return the corners (N, 3, base frame) of the object's geoms' bounding boxes."""
        m, d = self.model, self.data
        mujoco.mj_kinematics(m, d)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        points = []
        for g in sorted(self._obj_geoms):
            centre, half = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
            local = centre + signs * half
            points.append(d.geom_xpos[g] + local @ d.geom_xmat[g].reshape(3, 3).T)
        return np.concatenate(points)

    def object_colors(self) -> np.ndarray:
        """Return the RGB colours (0..1, one row per geom) the object is drawn in."""
        m = self.model
        return np.array([m.geom_rgba[g, :3] for g in range(m.ngeom)
                         if m.geom_bodyid[g] == self._obj])

    def bowl_position(self) -> Optional[np.ndarray]:
        """Return the bowl's centre (m, base frame) in the pour task, else None."""
        return None if self._bowl is None else self.data.mocap_pos[self._bowl].copy()

    def mouth_position(self) -> np.ndarray:
        """Return the centre of the cup's mouth (its top face), base frame."""
        centre, q = self.object_pose()
        return centre + rotations.rotate(q, [0.0, 0.0, self.s.cup.height / 2.0])

    def palm_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the simulated wrist (palm frame) position and quaternion (x, y, z, w)."""
        return (self.data.xpos[self._palm].copy(),
                mm.ros_quat(self.data.xquat[self._palm]))

    def hand_positions(self) -> np.ndarray:
        """Return the 16 hand joint angles in the hand config's order (rad)."""
        return self.data.qpos[self._hand_qadr].copy()

    # --- control and physics ---------------------------------------------------------
    def hand_targets(self, hand: Union[float, Sequence[float]]) -> np.ndarray:
        """Return joint targets: from a closure (0 open .. 1 closed) or 16 angles (clamped)."""
        cfg = self.hand_config
        values = np.asarray(hand, dtype=float)
        if values.ndim == 0:
            c = float(np.clip(values, 0.0, 1.0))
            return cfg.pose('open') + c * (cfg.pose('closed') - cfg.pose('open'))
        if values.shape != (cfg.size,) or not np.all(np.isfinite(values)):
            raise ValueError(f'hand targets need {cfg.size} finite angles, got {values.shape}')
        return np.clip(values, cfg.lower, cfg.upper)

    def update(self, wrist_position, wrist_orientation, hand: Union[float, Sequence[float]],
               dt: Optional[float] = None) -> None:
        """
        Set the wrist target and hand joint targets, then advance physics.

        `hand` is a closure (0 open .. 1 closed, between the config's named poses) or 16 joint
        angles in the config's order. The world advances by `dt` seconds, or (dt None) by the
        wall-clock time since the previous update, at most max_update_dt (the first call after
        reset only sets the targets).
        """
        position = np.asarray(wrist_position, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f'wrist position needs 3 finite values, got {position.tolist()}')
        quat = mm.mj_quat(wrist_orientation)  # ValueError for a zero or non-finite quaternion
        targets = self.hand_targets(hand)
        self._target_pos, self._target_quat = position, quat
        self.data.ctrl[self._actuators] = targets
        now = self._clock()
        if dt is None:
            dt = 0.0 if self._last_update is None else min(now - self._last_update,
                                                          self.s.max_update_dt)
        self._last_update = now
        self.step(dt)

    def step(self, dt: float) -> None:
        """Advance physics by dt seconds (whole timesteps) towards the current targets."""
        if not dt >= 0:
            raise ValueError(f'dt must be >= 0, got {dt}')
        m, d = self.model, self.data
        d.mocap_quat[self._mocap] = self._target_quat
        for _ in range(int(round(dt / m.opt.timestep))):
            palm = d.xpos[self._palm]
            lead = self._target_pos - palm
            norm = float(np.sqrt(lead @ lead))
            if norm > self.s.max_wrist_lead:
                lead *= self.s.max_wrist_lead / norm
            d.mocap_pos[self._mocap] = palm + lead
            mujoco.mj_step(m, d)
        self.closest = min(self.closest, self.grasp_distance(self.palm_pose()[0]))

    # --- task ------------------------------------------------------------------------
    def grasp_region(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the ends of the object's grasp region, a segment (base frame).

        Cup: centre -> top centre; spoon: the handle between the rest's posts; drawer: the
        handle bar.
        """
        centre, q = self.object_pose()
        if self.s.obj == 'cup':
            a, b = [0.0, 0.0, 0.0], [0.0, 0.0, self.s.cup.height / 2.0]
        elif self.s.obj == 'spoon':
            a, b = [self.s.spoon.post_x[0], 0.0, 0.0], [self.s.spoon.post_x[1], 0.0, 0.0]
        else:
            dr = self.s.drawer
            a = [-dr.handle_standoff, -dr.handle_length / 2, dr.handle_z]
            b = [-dr.handle_standoff, dr.handle_length / 2, dr.handle_z]
        return centre + rotations.rotate(q, a), centre + rotations.rotate(q, b)

    def grasp_distance(self, point: np.ndarray) -> float:
        """Return the distance of a point to the object's grasp region (grasp_region)."""
        a, b = self.grasp_region()
        seg = b - a
        t = float(np.clip(np.dot(point - a, seg) / np.dot(seg, seg), 0.0, 1.0))
        return float(np.linalg.norm(point - (a + t * seg)))

    def wrist_force(self) -> float:
        """Return the force (N) the wrist weld (the arm) applies to the palm now."""
        d = self.data
        rows = np.flatnonzero((d.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY)
                              & (d.efc_id == self._weld))
        return float(np.linalg.norm(d.efc_force[rows[:3]])) if rows.size else 0.0

    def cup_contacts(self) -> Tuple[set, bool]:
        """Return (hand parts touching the object, whether a support touches it): see contacts."""
        return self.object_contacts()

    def object_contacts(self) -> Tuple[set, bool]:
        """
        Return (hand parts touching the object, whether a support touches the object).

        Supports: the table, the floor and the object's fixture (the spoon's rest, the cabinet).
        """
        d = self.data
        parts, table = set(), False
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if c.dist > 1e-3 or (g1 in self._obj_geoms) == (g2 in self._obj_geoms):
                continue
            other = g2 if g1 in self._obj_geoms else g1
            if other in self._supports:
                table = True
            elif other in self._group_of_geom:
                parts.add(self._group_of_geom[other])
        return parts, table

    @property
    def lift(self) -> float:
        """Return the object's height above its resting height (m; 0 for the drawer)."""
        if self.s.obj == 'drawer':
            return 0.0
        return float(self.data.qpos[self._obj_qadr + 2] - self._rest_z)

    @property
    def tilt(self) -> float:
        """Return the angle (rad) between the cup's axis and the vertical."""
        axis = rotations.rotate(self.object_pose()[1], [0.0, 0.0, 1.0])
        return float(np.arccos(np.clip(axis[2], -1.0, 1.0)))

    def uprightness(self) -> float:
        """Return 1 within max_tilt of upright, falling linearly to 0 at twice max_tilt."""
        excess = (self.tilt - self.s.max_tilt) / self.s.max_tilt
        return float(np.clip(1.0 - excess, 0.0, 1.0))

    @property
    def held(self) -> bool:
        """Return whether the hand holds the cup: two hand parts touch it, the table does not."""
        parts, table = self.cup_contacts()
        return len(parts) >= 2 and not table

    def task_reward(self) -> Tuple[float, bool]:
        """Return (reward in [0, 1], success) of the task (see the module docstring)."""
        parts, table = self.cup_contacts()
        if self.s.obj == 'drawer':
            frac = float(np.clip(self.opened / self.s.drawer.travel, 0.0, 1.0))
            return frac, frac >= self.s.drawer_success - 1e-9
        if self.s.obj == 'spoon':
            if not parts:
                closeness = 1.0 - self.closest / self.s.shaping_distance
                return 0.3 * float(np.clip(closeness, 0.0, 1.0)), False
            frac = float(np.clip(self.lift / self.s.lift_target, 0.0, 1.0))
            held = len(parts) >= 2 and not table
            return 0.3 + 0.7 * frac, held and self.lift >= self.s.lift_target - 1e-6
        if parts:
            frac = float(np.clip(self.lift / self.s.lift_target, 0.0, 1.0))
            held = len(parts) >= 2 and not table and self.lift >= self.s.lift_target - 1e-6
            if self.s.task == 'pick_cup':
                success = held and self.tilt <= self.s.max_tilt
                return 0.3 + 0.7 * frac * self.uprightness(), success
            tilt = float(np.clip(self.tilt / self.s.pour_tilt, 0.0, 1.0))
            off = float(np.linalg.norm((self.mouth_position() - self.bowl_position())[:2]))
            over = float(np.clip(1.0 - max(0.0, off - self.s.bowl.radius)
                                 / self.s.shaping_distance, 0.0, 1.0))
            success = held and tilt >= 1.0 and off <= self.s.bowl.radius
            return 0.3 + 0.7 * frac * (tilt + over) / 2.0, success
        closeness = 1.0 - self.closest / self.s.shaping_distance
        return 0.3 * float(np.clip(closeness, 0.0, 1.0)), False

    # --- rendering -------------------------------------------------------------------
    def _ensure_renderer(self) -> None:
        if self._renderer is not None:
            return
        w, h = self.camera.width, self.camera.height
        gl = mujoco.GLContext(w, h)
        gl.make_current()
        context = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = self.model.camera('rgbd').id
        self._renderer = dict(gl=gl, context=context, camera=cam,
                              scene=mujoco.MjvScene(self.model, maxgeom=1000),
                              option=mujoco.MjvOption(), rect=mujoco.MjrRect(0, 0, w, h),
                              rgb=np.empty((h, w, 3), np.uint8),
                              depth=np.empty((h, w), np.float32))

    def render(self, object_pose=None) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (rgb uint8 H x W x 3, depth float32 H x W in metres along the optical axis).

        Pixels that see nothing within the far plane are NaN. The current physics state is
        drawn; `object_pose` is accepted for API compatibility with the kinematic world and
        ignored (call render under the same lock as update). The first call creates the
        OpenGL context (MUJOCO_GL=egl renders offscreen on the CPU).
        """
        del object_pose
        self._ensure_renderer()
        r = self._renderer
        r['gl'].make_current()
        mujoco.mjv_updateScene(self.model, self.data, r['option'], None, r['camera'],
                               mujoco.mjtCatBit.mjCAT_ALL, r['scene'])
        mujoco.mjr_render(r['rect'], r['scene'], r['context'])
        mujoco.mjr_readPixels(r['rgb'], r['depth'], r['rect'], r['context'])
        return np.flipud(r['rgb']).copy(), self._metric_depth(np.flipud(r['depth']))

    def _metric_depth(self, buffer: np.ndarray) -> np.ndarray:
        """Convert the reversed-Z depth buffer (1 near .. 0 far) to metres along the axis."""
        extent = self.model.stat.extent
        near = np.float32(self.model.vis.map.znear * extent)
        far = np.float32(self.model.vis.map.zfar * extent)
        # glFrustum's projection, remapped to reversed Z as MuJoCo does (see mujoco.Renderer)
        c = -(far + near) / (far - near)
        d = -(np.float32(2) * far * near) / (far - near)
        c, d = np.float32(-0.5) * c - np.float32(0.5), np.float32(-0.5) * d
        z = buffer.astype(np.float64)
        with np.errstate(divide='ignore'):
            depth = d / (z + c)
        depth[(z <= 0) | (depth >= 0.999 * far)] = np.nan
        return depth.astype(np.float32)

    def close(self) -> None:
        """Free the OpenGL context (safe to call twice)."""
        if self._renderer is not None:
            r, self._renderer = self._renderer, None
            r['gl'].make_current()
            r['context'].free()
            r['gl'].free()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down GL already
            pass
