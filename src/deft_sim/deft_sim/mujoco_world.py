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

Task "pour from the cup" (task='pour_cup'): a static bowl stands beside the cup, at a fixed
offset from it in base axes (bowl_offset, 17 cm to the robot's right) plus a seeded jitter of
+-bowl_jitter per axis, so the single demonstration (lift, carry over the bowl, roll the wrist)
serves every placement. Success = the cup held (as above), lifted by lift_target, tilted by at
least pour_tilt, its mouth within the bowl's radius of the bowl's centre (horizontally). Reward
when touched: 0.3 + 0.7 * lift fraction * (tilt fraction + over-bowl fraction) / 2; not
touched: the same approach shaping as the pick task.

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

Task "scoop the grape" (task='scoop_grape'): a ladle-like spoon (settings.ladle: its handle on
one rest post, a neck dropping to a tray bowl that rests on the table, walled at the sides and
the neck, open at the tip) lies with its bowl at the back of a static dish (a ring wall, the
table its floor). Grapes (free spheres with friction) lie in the dish: grapes_in_bowl of them
in the spoon's bowl against the neck, the rest in front of its open tip (seeded +-1 mm
jitter). The spoon points away from the robot, its yaw +-max_spoon_yaw. Success = the spoon
held (two hand parts, touching neither rest, dish nor table) and a grape resting in its bowl
(within the bowl's floor and walls, spoon frame) with its bottom >= scoop_lift above the table.
Reward when touched: 0.3 + 0.1 * spoon lift fraction + 0.6 * (bottom height of the highest
grape in the bowl / scoop_lift, capped); not touched: up to 0.3 by approach (to the handle).
This is a forgiving scoop: the grapes that count start in the bowl, and the task is to lift
the spoon out of the dish firmly and level enough that they stay in (the hand's curled-finger
grip did not gather grapes from the open tip reliably).

Task "stir with the spoon" (task='stir_spoon'): the same spoon on its rest and a static pot (a
ring wall with a floor) at a fixed offset from the spoon's resting bowl in base axes
(pot_offset) plus a seeded jitter of +-pot_jitter per axis. After every update in which the
spoon is held (two hand parts, touching neither rest nor table; the pot may be touched) with
its tip (the centre of its bowl's floor) inside the pot (within its inner radius, below its
rim), the tip's horizontal position joins the region it swept; `stirred` is that region's
convex-hull perimeter (m; a circle of radius r: 2 pi r; jitter in place adds little).
Success = stirred >= stir_success * stir_length. Reward: 0.3 once the spoon has been held
(else up to 0.3 by approach) + 0.7 * stirred / stir_length (capped).

Every task's object is placed by kinematic_world.sample_placement(seed, split) (SPLITS); the
spoon of scoop_grape and stir_spoon and the cabinet turn by the placement's yaw scaled to
+-max_spoon_yaw / +-max_cabinet_yaw.
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

TASKS = ('pick_cup', 'pour_cup', 'pick_spoon', 'open_drawer', 'scoop_grape', 'stir_spoon')
OBJECT_OF_TASK = {'pick_cup': 'cup', 'pour_cup': 'cup', 'pick_spoon': 'spoon',
                  'open_drawer': 'drawer', 'scoop_grape': 'spoon', 'stir_spoon': 'spoon'}
LADLE_TASKS = ('scoop_grape', 'stir_spoon')  # tasks whose spoon is settings.ladle


@dataclass(frozen=True)
class MujocoSettings:
    """Task, placement and robot-model settings of the MuJoCo world."""

    lift_target: float = 0.10
    max_tilt: float = np.radians(30.0)  # rad: a lifted cup tilted further is not a success
    shaping_distance: float = 0.15
    task: str = 'pick_cup'  # one of TASKS
    pour_tilt: float = np.radians(100.0)  # rad: the cup's mouth points below the horizontal
    bowl_offset: Tuple[float, float] = (0.0, -0.17)  # m: bowl centre minus cup centre (x, y)
    bowl_jitter: float = 0.01  # m: seeded jitter of the bowl's centre, +- per axis
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
    ladle: mm.SpoonGeometry = mm.LADLE  # the spoon of scoop_grape and stir_spoon
    max_spoon_yaw: float = np.radians(10.0)  # rad: scoop/stir spoon's yaw range is +- this
    dish: mm.DishGeometry = mm.DishGeometry()  # scoop_grape: the grapes' dish
    dish_shift: float = 0.02  # m: dish centre ahead of the tray's centre, along the spoon
    grapes: mm.GrapeGeometry = mm.GrapeGeometry()
    grapes_in_bowl: int = 2  # scoop_grape: grapes resting in the spoon's tray at reset
    scoop_lift: float = 0.05  # m: a scooped grape's bottom above the table (success)
    pot: mm.DishGeometry = mm.DishGeometry(radius=0.08, height=0.045, floor=0.004,
                                           rgba=(0.55, 0.6, 0.65, 1.0),
                                           inside_rgba=(0.3, 0.32, 0.35, 1.0))
    pot_offset: Tuple[float, float] = (0.15, 0.0)  # m: pot centre minus the resting tray's (x, y)
    pot_jitter: float = 0.005  # m: seeded jitter of the pot's centre, +- per axis
    stir_length: float = 0.12  # m: swept perimeter the reward asks for (2 cm circle: 0.126)
    stir_success: float = 0.75  # fraction of stir_length swept inside the pot, held: success

    @property
    def obj(self) -> str:
        """Return the name of the task's object body: cup, spoon or drawer."""
        return OBJECT_OF_TASK[self.task]

    @property
    def spoon_geometry(self) -> mm.SpoonGeometry:
        """Return the geometry of the task's spoon (the ladle for scoop and stir)."""
        return self.ladle if self.task in LADLE_TASKS else self.spoon

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r}; expected one of {", ".join(TASKS)}')
        if not np.pi / 4 <= self.pour_tilt <= np.pi:
            raise ValueError('pour_tilt must be in [pi/4, pi] rad')
        if len(self.bowl_offset) != 2 or not 0 <= self.bowl_jitter < np.hypot(
                *self.bowl_offset) - self.cup.radius - self.bowl.radius:
            raise ValueError('bowl_offset needs (x, y) m with the bowl clear of the cup, '
                             'bowl_jitter >= 0')
        if len(self.pot_offset) != 2 or self.pot_jitter < 0:
            raise ValueError('pot_offset needs (x, y) m, pot_jitter must be >= 0')
        if not 0 <= self.grapes_in_bowl <= min(4, self.grapes.count):
            raise ValueError('grapes_in_bowl must be in [0, min(4, grapes.count)]')
        if self.scoop_lift <= 0 or self.stir_length <= 0 or not 0 < self.stir_success <= 1:
            raise ValueError('scoop_lift and stir_length must be > 0, stir_success in (0, 1]')
        if not self.ladle.ladle or not 0 <= self.max_spoon_yaw < np.pi / 4:
            raise ValueError('ladle needs neck_drop > 0, max_spoon_yaw in [0, pi/4)')
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


def grape_slots(radius: float, r: float, front: float, count: int) -> np.ndarray:
    """
    Return `count` grape centres (x, y; dish frame, m) in a dish ahead of the tray's tip.

    The slots lie on a square grid (2 mm gaps) ahead of x = `front` (the tray's open edge) in
    lanes either side of the spoon's axis, inside the wall (inner radius `radius`) of the dish;
    those nearest the edge's middle first.
    """
    pitch = 2.0 * r + 0.002
    slots = [(front + r + 0.002 + i * pitch, (j + 0.5) * pitch)
             for i in range(int(2 * radius / pitch) + 1)
             for j in range(-int(radius / pitch) - 1, int(radius / pitch) + 1)]
    slots = [p for p in slots if np.hypot(*p) <= radius - r - 0.001]
    slots.sort(key=lambda p: (round(float(np.hypot(p[0] - front, p[1])), 6), p[1]))
    if len(slots) < count:
        raise ValueError(f'the dish holds {len(slots)} grapes ahead of the spoon, not {count}')
    return np.array(slots[:count])


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Return the vertices (K, 2) of the convex hull of 2D points, counter-clockwise."""
    pts = np.unique(np.asarray(points, dtype=float).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return pts

    def half(seq):
        chain = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-1] - chain[-2], p - chain[-2]
                if ax * by - ay * bx > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain[:-1]
    return np.array(half(pts) + half(pts[::-1]))


def hull_perimeter(hull: np.ndarray) -> float:
    """Return the perimeter of a convex polygon (K, 2) (twice the length of a segment)."""
    if len(hull) < 2:
        return 0.0
    return float(np.linalg.norm(hull - np.roll(hull, 1, axis=0), axis=1).sum())


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
        self.spoon = self.s.spoon_geometry
        containers = {'scoop_grape': [('dish', self.s.dish)],
                      'stir_spoon': [('pot', self.s.pot)]}.get(self.s.task, [])
        self.xml = mm.build_mjcf(hand.joint_names, hand.lower, hand.upper,
                                 camera_to_base.translation, camera_to_base.rotation, self.fovy,
                                 (camera.width, camera.height), self.s.hand, self.s.cup,
                                 home.translation, home.rotation,
                                 self.s.bowl if self.s.task == 'pour_cup' else None,
                                 self.s.obj, self.spoon, self.s.drawer, containers,
                                 self.s.grapes if self.s.task == 'scoop_grape' else None)
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
        self._container = m.body_mocapid[m.body(containers[0][0]).id] if containers else None
        self._grape_qadr = np.array([m.jnt_qposadr[m.joint(f'grape_{i}_free').id]
                                     for i in range(self.s.grapes.count)]) \
            if self.s.task == 'scoop_grape' else np.zeros(0, dtype=int)
        self._obj_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] == self._obj
                           and m.geom_contype[g] | m.geom_conaffinity[g]}
        self._fixture = {'spoon': 'spoon_rest', 'drawer': 'cabinet'}.get(self.s.obj)
        self._fixture_mocap = None if self._fixture is None else \
            m.body_mocapid[m.body(self._fixture).id]
        fixtures = [self._fixture] + (['dish'] if self.s.task == 'scoop_grape' else [])
        self._supports = {m.geom('table').id, m.geom('floor').id} | {
            g for g in range(m.ngeom) for f in fixtures if f is not None
            and m.geom_bodyid[g] == m.body(f).id}
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
        self.stirred = 0.0  # stir_spoon: perimeter (m) of the region the tip swept (_track_stir)
        self._swept, self._was_held = np.zeros((0, 2)), False
        self.reset(0, 'train')

    # --- placement -------------------------------------------------------------------
    def reset(self, seed: int, split: str = 'train') -> None:
        """Place the object anew, the hand open at home: same seed and split, same scene."""
        x, y, yaw, rng = sample_placement(seed, split)
        d, m = self.data, self.model
        mujoco.mj_resetData(m, d)
        if self._bowl is not None:  # a fixed offset from the cup, jitter drawn after the cup
            jitter = rng.uniform(-self.s.bowl_jitter, self.s.bowl_jitter, 2)
            d.mocap_pos[self._bowl] = (x + self.s.bowl_offset[0] + jitter[0],
                                       y + self.s.bowl_offset[1] + jitter[1],
                                       self.s.bowl.height / 2.0)
        if self.s.obj == 'drawer':
            yaw *= self.s.max_cabinet_yaw / np.pi
        elif self.s.task in LADLE_TASKS:
            yaw *= self.s.max_spoon_yaw / np.pi
        q_yaw = mm.mj_quat(rotations.from_rotvec([0.0, 0.0, yaw]))
        if self._fixture_mocap is not None:
            d.mocap_pos[self._fixture_mocap] = (x, y, 0.0)
            d.mocap_quat[self._fixture_mocap] = q_yaw
        if self.s.obj == 'drawer':
            d.qpos[self._obj_qadr] = 0.0
            self._rest_z = 0.0
        else:
            self._rest_z = self.s.cup.height / 2.0 if self.s.obj == 'cup' else \
                self.spoon.rest_height + self.spoon.handle_half[2]
            d.qpos[self._obj_qadr:self._obj_qadr + 3] = (x, y, self._rest_z)
            d.qpos[self._obj_qadr + 3:self._obj_qadr + 7] = q_yaw
        if self.s.task in LADLE_TASKS:
            self._place_containers(np.array([x, y, self._rest_z]), yaw, rng)
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
        self.stirred = 0.0
        self._swept, self._was_held = np.zeros((0, 2)), False

    def _place_containers(self, spoon_position: np.ndarray, yaw: float,
                          rng: np.random.Generator) -> None:
        """Place the dish and its grapes (scoop) or the pot (stir) for the spoon's placement."""
        d = self.data
        c, s = np.cos(yaw), np.sin(yaw)
        along = np.array([c, s, 0.0])
        tray = spoon_position + self.spoon.bowl_centre[0] * along
        if self.s.task == 'stir_spoon':
            jitter = rng.uniform(-self.s.pot_jitter, self.s.pot_jitter, 2)
            d.mocap_pos[self._container] = (tray[0] + self.s.pot_offset[0] + jitter[0],
                                            tray[1] + self.s.pot_offset[1] + jitter[1], 0.0)
            d.mocap_quat[self._container] = (1.0, 0.0, 0.0, 0.0)
            return
        centre = tray + self.s.dish_shift * along
        d.mocap_pos[self._container] = (centre[0], centre[1], 0.0)
        d.mocap_quat[self._container] = mm.mj_quat(rotations.from_rotvec([0.0, 0.0, yaw]))
        # grapes_in_bowl grapes lie in the tray against its neck, the rest in the dish ahead
        r, sp, n_in = self.s.grapes.radius, self.spoon, self.s.grapes_in_bowl
        pitch = 2.0 * r + 0.002
        rear = sp.handle_half[0] + r + 0.001 - sp.bowl_centre[0] - self.s.dish_shift
        floor = spoon_position[2] + sp.bowl_centre[2] + r
        ahead = grape_slots(self.s.dish.radius, r, sp.bowl_half[0] - self.s.dish_shift,
                            self.s.grapes.count - n_in)
        slots = [(u, v, r) for u, v in ahead] + [
            (rear + (i // 2) * pitch, ((i % 2) - 0.5) * pitch, floor) for i in range(n_in)]
        jitter = rng.uniform(-0.001, 0.001, (len(slots), 2))
        for adr, (u, v, z), (du, dv) in zip(self._grape_qadr, slots, jitter):
            u, v = u + du, v + dv
            d.qpos[adr:adr + 3] = (centre[0] + c * u - s * v, centre[1] + s * u + c * v, z)
            d.qpos[adr + 3:adr + 7] = (1.0, 0.0, 0.0, 0.0)

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

    def container_position(self) -> Optional[np.ndarray]:
        """Return the dish's (scoop) or pot's (stir) footprint centre (m, base), else None."""
        return None if self._container is None else self.data.mocap_pos[self._container].copy()

    def grape_positions(self) -> np.ndarray:
        """Return the grapes' centres (N, 3; m, base frame; empty unless scoop_grape)."""
        return np.array([self.data.qpos[a:a + 3] for a in self._grape_qadr]).reshape(-1, 3)

    def tip_position(self) -> np.ndarray:
        """Return the spoon's tip point (the centre of its bowl's inner floor), base frame."""
        centre, q = self.object_pose()
        return centre + rotations.rotate(q, self.spoon.bowl_centre)

    def grapes_in_spoon(self) -> np.ndarray:
        """Return whether each grape rests in the spoon's tray (within its floor and walls)."""
        centre, q = self.object_pose()
        sp, r = self.spoon, self.s.grapes.radius
        local = rotations.rotate(rotations.conjugate(q), self.grape_positions() - centre) \
            - np.asarray(sp.bowl_centre)
        bx, by, _ = sp.bowl_half
        return ((np.abs(local[:, 0]) <= bx) & (np.abs(local[:, 1]) <= by)
                & (local[:, 2] >= r - 0.003) & (local[:, 2] <= sp.tray_wall + r))

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
        if self.s.task == 'stir_spoon':
            self._track_stir()

    def _track_stir(self) -> None:
        """Extend the region the tip swept inside the pot while held (stirred: its perimeter)."""
        parts, support = self.object_contacts()
        held = len(parts) >= 2 and not support
        self._was_held |= held
        tip = self.tip_position()
        rel = tip[:2] - self.container_position()[:2]
        if held and np.hypot(*rel) <= self.s.pot.radius and tip[2] <= self.s.pot.height:
            self._swept = convex_hull(np.vstack([self._swept, rel]))
            self.stirred = hull_perimeter(self._swept)

    # --- task ------------------------------------------------------------------------
    def grasp_region(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the ends of the object's grasp region, a segment (base frame).

        Cup: centre -> top centre; spoon: the handle between the rest's posts (a ladle's: from
        its post to the neck); drawer: the handle bar.
        """
        centre, q = self.object_pose()
        if self.s.obj == 'cup':
            a, b = [0.0, 0.0, 0.0], [0.0, 0.0, self.s.cup.height / 2.0]
        elif self.s.obj == 'spoon':
            a, b = [self.spoon.handle_span[0], 0.0, 0.0], [self.spoon.handle_span[1], 0.0, 0.0]
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

        Supports: the table, the floor and the object's fixture (the spoon's rest, the cabinet;
        scoop_grape: the dish too).
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
        if self.s.task == 'stir_spoon':
            closeness = float(np.clip(1.0 - self.closest / self.s.shaping_distance, 0.0, 1.0))
            grasp = 1.0 if self._was_held or parts else closeness
            frac = float(np.clip(self.stirred / self.s.stir_length, 0.0, 1.0))
            return 0.3 * grasp + 0.7 * frac, frac >= self.s.stir_success - 1e-9
        if self.s.obj == 'spoon':
            if not parts:
                closeness = 1.0 - self.closest / self.s.shaping_distance
                return 0.3 * float(np.clip(closeness, 0.0, 1.0)), False
            frac = float(np.clip(self.lift / self.s.lift_target, 0.0, 1.0))
            held = len(parts) >= 2 and not table
            if self.s.task == 'scoop_grape':
                r = self.s.grapes.radius
                heights = self.grape_positions()[self.grapes_in_spoon(), 2] - r
                top = float(heights.max()) if heights.size else 0.0
                scooped = float(np.clip(top / self.s.scoop_lift, 0.0, 1.0))
                return 0.3 + 0.1 * frac + 0.6 * scooped, held and scooped >= 1.0 - 1e-9
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
