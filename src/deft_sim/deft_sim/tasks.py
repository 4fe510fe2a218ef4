"""
The tasks of the simulated world and their human priors: one TaskSpec per task.

A TaskSpec holds what DEFT takes from people for a task: the task text the affordance model is
conditioned on, the nominal human grasp (where the hand touches the object, how the wrist is
turned, which hand pose closes on it) and the post-grasp trajectory tau of the single human
demonstration. Frames (REP 103):

- object frame: MujocoWorld.object_pose() (cup: its centre; spoon, and the ladle-like spoon of
  scoop_grape and stir_spoon: the handle's centre, +x towards the bowl; drawer: the table point
  below the drawer front's centre, +x into the cabinet). `contacts` are points on the object's
  surface in that frame.
- yaw frame: the object's frame turned about the vertical only (its yaw): the nominal wrist
  orientation `wrist` is given in it, or in base axes for objects whose yaw does not matter
  (`symmetric`, the cup).
- wrist frame (deft_arm): origin at the centre of the palm's inner face, +z the approach axis
  out of the palm, +x along the fingers. `palm_offset` is the wrist position minus the mean
  contact point, in the wrist frame: the arm's grasp position is contact + R(wrist) palm_offset.
- tau: offsets of the wrist from its grasp position, base axes, flat x, y, z triples (metres):
  the episode node's `post_grasp_waypoints` format.
- tau_rotations: per waypoint of tau a rotation vector r (rad, base axes, flat triples; the
  episode node's `post_grasp_rotations`): the waypoint's wrist orientation is
  from_rotvec(r) * q_grasp (the grasp orientation turned about base axes through the wrist).
  Empty: every waypoint keeps the grasp orientation.

Where a task's tau ends relative to something else in the scene (pour_cup's bowl, stir_spoon's
pot), the world places that at a fixed offset in base axes from the object plus a small seeded
jitter, so the one demonstration serves every placement (MujocoSettings.bowl_offset, pot_offset).

The numbers were measured with the scripted grasps of test_tasks.py: the nominal grasp and tau
(run_scripted(world, *spec.grasp(pose), closure, spec.waypoints, tau_rotations=spec.rotations))
succeed on train and test placements; wrist rotations and contact points far off fail.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from deft_common import rotations

Vec3 = Tuple[float, float, float]
PALM_DOWN = (1.0, 0.0, 0.0, 0.0)  # wrist +z down, fingers along +x (half turn about x)
# the spoon grasps' wrist: a quarter turn about z, then a half turn about the turned x axis
SPOON_WRIST = tuple(rotations.compose(rotations.from_rotvec((0.0, 0.0, np.pi / 2)),
                                      rotations.from_rotvec((np.pi, 0.0, 0.0))).tolist())
# the drawer's wrist: a quarter turn about y, the approach axis (+z) along the object's +x
SIDE_WRIST = tuple(rotations.from_rotvec((0.0, np.pi / 2, 0.0)).tolist())
# the pour's side grasp: approach (+z) along base +x, fingers (+x) along base +y, the index
# finger (+y) up: a third of a turn about (1, 1, 1)
SIDE_CUP_WRIST = (0.5, 0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TaskSpec:
    """A task of the simulated world with its human priors (see the module docstring)."""

    name: str  # the world's task id (MujocoSettings.task, the sim node's mujoco_task)
    text: str  # the task text the affordance model and the episode goal use
    obj: str  # the object body: cup, spoon, drawer
    success: str  # what success is and how the reward in [0, 1] is computed
    contacts: Tuple[Vec3, ...]  # human contact points on the object, object frame (m)
    wrist: Tuple[float, float, float, float]  # nominal wrist quaternion x y z w (yaw frame)
    palm_offset: Vec3  # wrist position minus the mean contact, wrist frame (m)
    hand_pose: str  # the named hand pose of the grasp (HandConfig pose, human_labels MANO pose)
    tau: Tuple[float, ...]  # post-grasp wrist offsets from the grasp, base axes, x y z triples
    symmetric: bool = False  # the object's yaw does not matter: `wrist` is in base axes
    tau_rotations: Tuple[float, ...] = ()  # per waypoint a rotation vector (rad, base axes)

    def __post_init__(self):
        if len(self.tau) % 3 or not np.all(np.isfinite(self.tau)):
            raise ValueError(f'{self.name}: tau needs finite x, y, z triples')
        if self.tau_rotations and (len(self.tau_rotations) != len(self.tau)
                                   or not np.all(np.isfinite(self.tau_rotations))):
            raise ValueError(f'{self.name}: tau_rotations needs one finite rotation vector '
                             f'(x, y, z triple, rad) per waypoint of tau, or none')
        if not self.contacts or any(len(c) != 3 for c in self.contacts):
            raise ValueError(f'{self.name}: contacts needs one or more x, y, z points')
        if len(self.wrist) != 4 or not np.linalg.norm(self.wrist) > 0:
            raise ValueError(f'{self.name}: wrist needs a non-zero quaternion x y z w')

    @property
    def waypoints(self) -> np.ndarray:
        """Return tau as an (N, 3) array of wrist offsets (m, base axes)."""
        return np.asarray(self.tau, dtype=float).reshape(-1, 3)

    @property
    def rotations(self) -> np.ndarray:
        """Return tau_rotations as (N, 3) rotation vectors (rad, base axes; zeros when empty)."""
        if not self.tau_rotations:
            return np.zeros_like(self.waypoints)
        return np.asarray(self.tau_rotations, dtype=float).reshape(-1, 3)

    def yaw_frame(self, object_orientation) -> np.ndarray:
        """Return the quaternion of the object's yaw frame (identity for a symmetric object)."""
        if self.symmetric:
            return np.array([0.0, 0.0, 0.0, 1.0])
        x_axis = rotations.rotate(object_orientation, [1.0, 0.0, 0.0])
        return rotations.from_rotvec([0.0, 0.0, float(np.arctan2(x_axis[1], x_axis[0]))])

    def contact_points(self, object_position, object_orientation,
                       scale: Vec3 = (1.0, 1.0, 1.0)) -> np.ndarray:
        """
        Return the human contact points (K, 3) in the base frame.

        `scale`: the object instance's size factors per object-frame axis
        (instances.ObjectInstance.scale): the contacts are those of the nominal object, scaled.
        A symmetric object's yaw is taken out of its orientation first: its contacts are in
        base axes turned by the object's tilt only (the pour's side contact faces the robot).
        """
        q = object_orientation
        if self.symmetric:
            x_axis = rotations.rotate(q, [1.0, 0.0, 0.0])
            yaw = rotations.from_rotvec([0.0, 0.0, float(np.arctan2(x_axis[1], x_axis[0]))])
            q = rotations.multiply(rotations.conjugate(yaw), q)
        size = np.asarray(scale, dtype=float)
        return np.array([np.asarray(object_position, dtype=float)
                         + rotations.rotate(q, size * np.asarray(c)) for c in self.contacts])

    def grasp(self, object_position, object_orientation,
              scale: Vec3 = (1.0, 1.0, 1.0)) -> Tuple[np.ndarray, np.ndarray]:
        """Return the nominal wrist pose (position, quaternion x y z w) for an object pose."""
        q = rotations.normalize(rotations.multiply(self.yaw_frame(object_orientation),
                                                   self.wrist))
        contact = self.contact_points(object_position, object_orientation, scale).mean(axis=0)
        return contact + rotations.rotate(q, self.palm_offset), q

    def contacts_in(self, world) -> np.ndarray:
        """Return the contact points (K, 3, base) on a world's object as it is now."""
        return self.contact_points(*world.object_pose(), world.object_scale())

    def grasp_in(self, world) -> Tuple[np.ndarray, np.ndarray]:
        """Return the nominal wrist pose on a world's object (its pose and instance) now."""
        return self.grasp(*world.object_pose(), world.object_scale())


def _flat(*triples: Vec3) -> Tuple[float, ...]:
    """Flatten x, y, z triples into one tuple of floats (the waypoint parameter layout)."""
    return tuple(float(v) for t in triples for v in t)


def _circle(centre: Vec3, radius: float, n: int, turns: float = 1.0) -> Tuple[Vec3, ...]:
    """Return n + 1 points of a horizontal circle about centre, `turns` turns from its +x point."""
    return tuple((centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), centre[2])
                 for a in np.linspace(0.0, 2 * np.pi * turns, n + 1))


SCOOP_PUSH = 0.05  # m: the scoop's push of the wrist along the spoon (base +x)
SCOOP_TILT = 0.4  # rad: the scoop's tip-up turn (about base -y: the tip rises)
STIR_Z = 0.025  # m: the stir's wrist height above the grasp (lower, the bowl drags on the floor)
STIR_RADIUS = 0.035  # m: the stir circle's radius about the pot's centre (inner radius 8 cm)
STIR_POINTS = 20  # waypoints of the stir, 22.5 deg apart
STIR_TURNS = 1.25  # turns of the demo's stir (the tip lags the wrist: one turn is 0.9-1.0)
CUP_TOP = 0.05  # m: half the height of mujoco_models.CupGeometry
SPOON_TOP = 0.005  # m: half the thickness of SpoonGeometry's handle
# pick_cup, pick_spoon: lift 15 cm, carry 15 cm to the robot's right (-y), hold: the repeated
# waypoint pauses 2 x 0.3 s, run_scripted's final hold adds 0.5 s (1.1 s in all)
PICK_TAU = _flat((0.0, 0.0, 0.15), (0.0, -0.15, 0.15), (0.0, -0.15, 0.15), (0.0, -0.15, 0.15))
HANDLE = (-0.035, 0.0, 0.17)  # DrawerGeometry: the bar's centre (standoff, 0, handle_z)
CUP_RADIUS = 0.035  # m: CupGeometry.radius
POUR_Z = 0.005  # m: the pour grasp's contact above the cup's centre
POUR_LIFT = 0.10  # m: the pour's lift
POUR_CARRY = 0.08  # m: carry towards the bowl (17 cm off) less the tilted mouth's reach and throw
POUR_LOW = 0.07  # m: the wrist's height over its grasp while it tilts (the mouth clears the rim)
POUR_TILT = float(np.radians(130.0))  # rad: the pour's tilt about base x (mouth towards -y)

TASK_SPECS: Dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec(
        name='pick_cup', text='pick up the cup', obj='cup',
        success='held by two hand parts off the table from lift-off (2 cm) to the end, never '
                'dropped: lifted 10 cm, carried 10 cm sideways, held 1 s at 10 cm, upright '
                'within 15 deg throughout; reward 0.3 + 0.7 * lift fraction * uprightness * '
                '(0.5 if dropped) * (0.6 + 0.25 * carried + 0.15 * held fraction) when '
                'touched, else up to 0.3 by approach',
        contacts=((0.0, 0.0, CUP_TOP),), wrist=PALM_DOWN, palm_offset=(0.0, 0.0, -0.012),
        hand_pose='closed', tau=PICK_TAU, symmetric=True),
    TaskSpec(
        name='pour_cup', text='pour from the cup into the bowl', obj='cup',
        success='held (two hand parts, not the table) with at least half of the material '
                '(small spheres in the hollow cup) in the bowl at the end; reward 0.3 + 0.2 * '
                'peak lift fraction + 0.5 * fraction of the material in the bowl when touched, '
                'else up to 0.3 by approach',
        # as people pour: the cup grasped by its side facing the robot, the mouth free (wrist
        # approach along base +x, fingers wrapping the wall towards +y, thumb on -y); tau: lift
        # POUR_LIFT, carry the cup so its mouth comes over the bowl (MujocoSettings.bowl_offset,
        # less the mouth's reach when tilted), tilt it POUR_TILT about base x (the forearm's
        # roll) while lowering it to POUR_LOW so the mouth turns towards the bowl, hold
        contacts=((-CUP_RADIUS, 0.0, POUR_Z),), wrist=SIDE_CUP_WRIST,
        palm_offset=(0.0, 0.0, -0.005), hand_pose='closed', symmetric=True,
        tau=_flat((0.0, 0.0, POUR_LIFT), (0.0, -POUR_CARRY, POUR_LIFT),
                  (0.0, -POUR_CARRY, POUR_LOW)),
        tau_rotations=_flat((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (POUR_TILT, 0.0, 0.0))),
    TaskSpec(
        name='pick_spoon', text='pick up the spoon', obj='spoon',
        success='held by two hand parts off rest and table from lift-off (2 cm) to the end, '
                'never dropped: lifted 10 cm, carried 10 cm sideways, held 1 s at 10 cm; '
                'reward 0.3 + 0.7 * lift fraction * (0.5 if dropped) * (0.6 + 0.25 * carried '
                '+ 0.15 * held fraction) when touched, else up to 0.3 by approach',
        contacts=((0.02, 0.0, SPOON_TOP),), wrist=SPOON_WRIST,
        palm_offset=(0.0, 0.0, -0.01), hand_pose='closed', tau=PICK_TAU),
    TaskSpec(
        name='open_drawer', text='open the drawer', obj='drawer',
        success='drawer pulled out >= 60 % of its travel with a hand part on the handle bar; '
                'reward = that pulled fraction',
        contacts=(HANDLE,), wrist=SIDE_WRIST,
        palm_offset=(-0.08, 0.0, -0.0165), hand_pose='closed',
        tau=(-0.08, 0.0, 0.0, -0.15, 0.0, 0.0)),
    TaskSpec(
        name='scoop_grape', text='scoop the grape', obj='spoon',
        success='the spoon held by two hand parts, off rest, dish and table, a grape in its '
                'bowl 5 cm above the table; reward 0.3 + 0.1 * spoon lift fraction + 0.6 * '
                'grape lift fraction when touched, else up to 0.3 by approach',
        # the ladle's handle, 3 cm from its centre towards the neck (the spoon's balance point
        # lies between the fingers); the palm 3 cm above it so the curled fingers close under
        # it. tau: push the tray's open tip 5 cm along the dish floor (the grip gives ~1 cm:
        # the tip runs under the grapes as the dish's far wall stops them); turn the tip up
        # 0.4 rad about the tray (the wrist, 8 cm behind and 10 cm above the tray's centre,
        # swings back 3.3 cm and down; turned about the wrist, the tray would shove forward
        # into the far wall and squeeze the grapes out); then lift to 10 cm
        contacts=((0.03, 0.0, SPOON_TOP),), wrist=SPOON_WRIST,
        palm_offset=(0.0, 0.0, -0.03), hand_pose='closed',
        tau=_flat((SCOOP_PUSH, 0.0, 0.0), (SCOOP_PUSH - 0.033, 0.0, -0.02),
                  (SCOOP_PUSH - 0.033, 0.0, 0.10)),
        tau_rotations=_flat((0.0, 0.0, 0.0), (0.0, -SCOOP_TILT, 0.0), (0.0, -SCOOP_TILT, 0.0))),
    TaskSpec(
        name='stir_spoon', text='stir with the spoon', obj='spoon',
        success='the spoon held by two hand parts, off rest and table, its tip inside the pot '
                'below the rim winding one full turn about the pot axis; reward 0.3 once '
                'held (else up to 0.3 by approach) + 0.7 * turns wound (capped at 1)',
        # the scoop's grasp; tau: lift 7 cm, carry the tip over the pot's centre
        # (MujocoSettings.pot_offset from the tray), lower the bowl into it, 1.25 turns of
        # a 3.5 cm circle about the centre (wider than the pot's jitter), lift out
        contacts=((0.03, 0.0, SPOON_TOP),), wrist=SPOON_WRIST,
        palm_offset=(0.0, 0.0, -0.03), hand_pose='closed',
        tau=_flat((0.0, 0.0, 0.07), (0.15 + STIR_RADIUS, 0.0, 0.07),
                  *_circle((0.15, 0.0, STIR_Z), STIR_RADIUS, STIR_POINTS, STIR_TURNS),
                  (0.15, 0.0, 0.08))),
)}


def run_scripted(world, position, orientation, hand, tau, dt: float = 0.02,
                 approach: float = 0.10, tau_rotations=None,
                 settle: float = 0.3) -> Tuple[float, bool]:
    """
    Run one grasp episode open-loop in a MujocoWorld, as the arm would, and return its reward.

    The wrist goes to the pre-grasp pose (`approach` m back along its +z axis), settles there
    `settle` s (the weld lags a long move from home), approaches the grasp pose (position,
    orientation) with the hand open, closes the hand to `hand` (a closure 0..1 or 16 joint
    angles) over 0.4 s, follows the wrist offsets `tau` ((N, 3), base axes)
    and holds 0.5 s. `tau_rotations` ((N, 3) rotation vectors, base axes; None = no turns)
    turns the wrist at each waypoint to from_rotvec(r) * orientation, slerped along each
    segment (segments take 1 s per 0.15 m or per 1.5 rad, at least 0.3 s). A side approach
    (approach axis within 60 deg of horizontal) first backs the hand off towards the robot and
    turns the wrist there, so the turn sweeps nothing.
    """
    position = np.asarray(position, dtype=float)
    q = rotations.normalize(orientation)
    axis = rotations.rotate(q, [0.0, 0.0, 1.0])
    pre = position - approach * axis
    offsets = np.asarray(tau, dtype=float).reshape(-1, 3)
    turns = np.zeros_like(offsets) if tau_rotations is None else \
        np.asarray(tau_rotations, dtype=float).reshape(-1, 3)
    if turns.shape != offsets.shape:
        raise ValueError(f'tau_rotations needs one rotation vector per waypoint of tau: '
                         f'{len(turns)} for {len(offsets)}')

    def move(a, b, quat, closure, duration):
        n = max(1, int(round(duration / dt)))
        for k in range(1, n + 1):
            world.update(a + (b - a) * k / n, quat, closure, dt=dt)

    start, q0 = world.palm_pose()
    if abs(axis[2]) < 0.5:
        back = np.array([0.15, pre[1], max(pre[2], start[2])])
        move(start, back, q0, 0.0, 0.5)
        for k in range(1, 16):
            world.update(back, rotations.slerp(q0, q, k / 15), 0.0, dt=dt)
        start = back
    move(start, pre, q, 0.0, 0.6)
    move(pre, pre, q, 0.0, settle)  # the arm settles at the pre-grasp pose before it approaches
    move(pre, position, q, 0.0, 0.6)
    opened, closed = world.hand_targets(0.0), world.hand_targets(hand)
    for k in range(1, 21):
        world.update(position, q, opened + (closed - opened) * k / 20, dt=dt)
    move(position, position, q, hand, 0.3)
    last, last_q = position, q
    for offset, turn in zip(offsets, turns):
        goal, goal_q = position + offset, rotations.turned(q, turn)
        duration = max(0.3, float(np.linalg.norm(goal - last)) / 0.15,
                       rotations.angle_between(last_q, goal_q) / 1.5)
        n = max(1, int(round(duration / dt)))
        for k in range(1, n + 1):
            world.update(last + (goal - last) * k / n, rotations.slerp(last_q, goal_q, k / n),
                         hand, dt=dt)
        last, last_q = goal, goal_q
    move(last, last, last_q, hand, 0.5)
    return world.task_reward()


def task_spec(name: str) -> TaskSpec:
    """Return the TaskSpec of a task id; ValueError naming the known tasks otherwise."""
    try:
        return TASK_SPECS[name]
    except KeyError:
        raise ValueError(f'unknown task {name!r}; expected one of '
                         f'{", ".join(TASK_SPECS)}') from None
