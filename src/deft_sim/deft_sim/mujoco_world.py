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

The tasks (pick_cup, pour_cup, pick_spoon, open_drawer, scoop_grape, stir_spoon), their success
and reward are described in mujoco_scoring, their settings in mujoco_settings; the scene's MJCF
comes from mujoco_models, the camera's rendering from mujoco_render. Every task's object is
placed by kinematic_world.sample_placement(seed, split) (SPLITS); the spoon of scoop_grape and
stir_spoon and the cabinet turn by the placement's yaw scaled to +-max_spoon_yaw /
+-max_cabinet_yaw.
"""

import time
from typing import Callable, Optional, Sequence, Tuple, Union

import mujoco
import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform
from deft_hand_driver.hand_config import HandConfig
from deft_sim import mujoco_models as mm
from deft_sim.instances import ObjectInstance, configuration
from deft_sim.kinematic_world import PinholeCamera, sample_placement
from deft_sim.mujoco_render import OffscreenRenderer, camera_from_fovy, fovy_of
from deft_sim.mujoco_scoring import TaskScoring, wrap_angle
from deft_sim.mujoco_settings import LADLE_TASKS, OBJECT_OF_TASK, TASKS, MujocoSettings

__all__ = ['LADLE_TASKS', 'OBJECT_OF_TASK', 'TASKS', 'MujocoSettings', 'MujocoWorld',
           'camera_from_fovy', 'fovy_of', 'grape_slots', 'material_slots', 'wrap_angle']


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


def material_slots(inner_radius: float, r: float, count: int) -> np.ndarray:
    """
    Return `count` sphere centres (x, y; cup frame, m) on a cup's floor: one layer.

    A hexagonal grid (1.5 mm gaps) inside the cup's wall (inner radius `inner_radius`, 1 mm
    clear), those nearest the centre first; ValueError if the floor holds fewer.
    """
    pitch = 2.0 * r + 0.0015
    n = int(inner_radius / pitch) + 1
    grid = [((i + 0.5 * j) * pitch, j * pitch * np.sqrt(3.0) / 2.0)
            for i in range(-2 * n, 2 * n + 1) for j in range(-n, n + 1)]
    slots = sorted((p for p in grid if np.hypot(*p) <= inner_radius - r - 0.001),
                   key=lambda p: (round(float(np.hypot(*p)), 6), p))
    if len(slots) < count:
        raise ValueError(f'the cup floor holds {len(slots)} spheres, not {count}')
    return np.array(slots[:count])


class MujocoWorld(TaskScoring):
    """The physically simulated tabletop: table, task object, mocap-driven 16-DOF hand, camera."""

    def __init__(self, camera: PinholeCamera, camera_to_base: Transform, hand: HandConfig,
                 settings: Optional[MujocoSettings] = None,
                 clock: Callable[[], float] = time.monotonic, extra_bodies: str = ''):
        self.camera, self.camera_to_base = camera, camera_to_base
        self.hand_config = hand
        self.base = settings or MujocoSettings()  # the nominal object; instances vary it
        self.extra_bodies = extra_bodies
        self.fovy = fovy_of(camera)
        self._clock = clock
        self._renderer = None
        self.instance: Optional[ObjectInstance] = None
        self._build(self.base)
        self.seed, self.split = 0, 'train'
        self.closest = np.inf
        self.reset(0, 'train')

    def _build(self, settings: MujocoSettings) -> None:
        """Compile the scene for `settings` (its object instance) and look up its ids."""
        self.s = settings
        home = Transform.from_list(self.s.home_pose)
        self.spoon = self.s.spoon_geometry
        containers = {'scoop_grape': [('dish', self.s.dish)], 'stir_spoon': [('pot', self.s.pot)],
                      'pour_cup': [('bowl', self.s.bowl)]}.get(self.s.task, [])
        pour = self.s.task == 'pour_cup'
        self.cup = self.s.cup_geometry
        hand, camera, camera_to_base = self.hand_config, self.camera, self.camera_to_base
        self.xml = mm.build_mjcf(hand.joint_names, hand.lower, hand.upper,
                                 camera_to_base.translation, camera_to_base.rotation, self.fovy,
                                 (camera.width, camera.height), self.s.hand, self.cup,
                                 home.translation, home.rotation, self.s.obj, self.spoon,
                                 self.s.drawer, containers,
                                 self.s.grapes if self.s.task == 'scoop_grape' else None,
                                 self.s.material if pour else None, self.extra_bodies)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._last_update: Optional[float] = None
        self._palm = m.body('palm').id
        self._obj = m.body(self.s.obj).id
        self._mocap = m.body_mocapid[m.body('wrist_target').id]
        self._weld = m.eq('wrist').id
        self._bowl = m.body_mocapid[m.body('bowl').id] if pour else None
        self._container = m.body_mocapid[m.body(containers[0][0]).id] \
            if self.s.task in LADLE_TASKS else None
        self._grape_qadr = np.array([m.jnt_qposadr[m.joint(f'grape_{i}_free').id]
                                     for i in range(self.s.grapes.count)]) \
            if self.s.task == 'scoop_grape' else np.zeros(0, dtype=int)
        self._material_qadr = np.array([m.jnt_qposadr[m.joint(f'material_{i}_free').id]
                                        for i in range(self.s.material.count)]) \
            if pour else np.zeros(0, dtype=int)
        self._obj_geoms = {g for g in range(m.ngeom) if m.geom_bodyid[g] == self._obj
                           and m.geom_contype[g] | m.geom_conaffinity[g]}
        self._handle_geom = m.geom('handle').id if self.s.obj == 'drawer' else -1
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
        self._rest_z = self.cup.height / 2.0  # set by reset for every object
        self._target_pos = home.translation.copy()
        self._target_quat = mm.mj_quat(home.rotation)

    # --- placement -------------------------------------------------------------------
    def reset(self, seed: int, split: str = 'train') -> None:
        """
        Set up configuration (seed, split) anew, the hand open at home: same seed, same scene.

        With settings.instances the object is the configuration's instance (instances.py; the
        scene is compiled anew when it changes), else the nominal object of the settings.
        """
        if self.base.instances:
            inst, (x, y, yaw, rng) = configuration(self.s.task, seed, split)
            if inst != self.instance:
                self._build(inst.settings(self.base))
                self.instance = inst
        else:
            x, y, yaw, rng = sample_placement(seed, split)
        d, m = self.data, self.model
        mujoco.mj_resetData(m, d)
        if self._bowl is not None:  # a fixed offset from the cup, jitter drawn after the cup
            jitter = rng.uniform(-self.s.bowl_jitter, self.s.bowl_jitter, 2)
            d.mocap_pos[self._bowl] = (x + self.s.bowl_offset[0] + jitter[0],
                                       y + self.s.bowl_offset[1] + jitter[1], 0.0)
            d.mocap_quat[self._bowl] = (1.0, 0.0, 0.0, 0.0)
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
            self._rest_z = self.cup.height / 2.0 if self.s.obj == 'cup' else \
                self.spoon.rest_height + self.spoon.handle_half[2]
            d.qpos[self._obj_qadr:self._obj_qadr + 3] = (x, y, self._rest_z)
            d.qpos[self._obj_qadr + 3:self._obj_qadr + 7] = q_yaw
        if self.s.task in LADLE_TASKS:
            self._place_containers(np.array([x, y, self._rest_z]), yaw, rng)
        if self._bowl is not None:  # the material on the cup's floor, a seeded +-1 mm jitter
            slots = material_slots(self.cup.inner_radius, self.s.material.radius,
                                   self.s.material.count)
            slots += rng.uniform(-0.001, 0.001, slots.shape)
            z = self.cup.floor + self.s.material.radius + 0.0005
            for adr, (u, v) in zip(self._material_qadr, slots):
                d.qpos[adr:adr + 7] = (x + u, y + v, z, 1.0, 0.0, 0.0, 0.0)
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
        self.reset_tracking()

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

    def object_scale(self) -> Tuple[float, float, float]:
        """Return the object instance's size factors per object-frame axis (1 when nominal)."""
        return (1.0, 1.0, 1.0) if self.instance is None else self.instance.scale

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

    def material_positions(self) -> np.ndarray:
        """Return the poured material's centres (N, 3; m, base; empty unless pour_cup)."""
        return np.array([self.data.qpos[a:a + 3] for a in self._material_qadr]).reshape(-1, 3)

    def material_in_bowl(self) -> np.ndarray:
        """Return whether each sphere of material lies in the bowl (inside, floor to rim)."""
        if self._bowl is None:
            return np.zeros(0, dtype=bool)
        p, b, r = self.material_positions(), self.bowl_position(), self.s.material.radius
        inside = np.hypot(*(p[:, :2] - b[:2]).T) <= self.s.bowl.radius
        bowl = self.s.bowl
        return inside & (p[:, 2] >= bowl.floor + r - 0.002) & (p[:, 2] <= bowl.height)

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
        return centre + rotations.rotate(q, [0.0, 0.0, self.cup.height / 2.0])

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
        self.track()

    def wrist_force(self) -> float:
        """Return the force (N) the wrist weld (the arm) applies to the palm now."""
        d = self.data
        rows = np.flatnonzero((d.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY)
                              & (d.efc_id == self._weld))
        return float(np.linalg.norm(d.efc_force[rows[:3]])) if rows.size else 0.0

    # --- rendering -------------------------------------------------------------------
    def render(self, object_pose=None) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (rgb uint8 H x W x 3, depth float32 H x W in metres along the optical axis).

        Pixels that see nothing within the far plane are NaN. The current physics state is
        drawn; `object_pose` is accepted for API compatibility with the kinematic world and
        ignored (call render under the same lock as update). The first call creates the
        OpenGL context (MUJOCO_GL=egl renders offscreen on the CPU).
        """
        del object_pose
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.camera.width, self.camera.height)
        return self._renderer.render(self.data, self.model)

    def close(self) -> None:
        """Free the OpenGL context (safe to call twice)."""
        if self._renderer is not None:
            r, self._renderer = self._renderer, None
            r.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down GL already
            pass
