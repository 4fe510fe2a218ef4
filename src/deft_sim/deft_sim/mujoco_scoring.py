"""
The tasks' success and reward in the MuJoCo world (the TaskScoring part of MujocoWorld).

Tasks "pick up the cup" and "pick up the spoon" (task='pick_spoon'; a thin spoon, flat handle +
shallow bowl, lies on a knife rest: two posts SpoonGeometry.rest_height above the table, at the
seeded placement and yaw): picking means holding the object off its support through the whole
post-grasp motion of the human demonstration (TaskSpec tau: lift 15 cm, carry 15 cm sideways,
hold 1 s), not just raising it. Held: touched by at least two parts of the hand (palm, index,
middle, ring, thumb) and by no support (table, floor, the spoon's rest). After every update
(_track_pick) the world follows: lift-off, the first update held with lift >= lift_off (2 cm);
`dropped`, set by any later update not held or below lift_off; `carried`, the largest
horizontal distance (m) of the object from its lift-off point while held; `held_for`, how long
(simulated s) it has been held at lift >= lift_target without a break; for the cup `held_tilt`,
its largest tilt while held. Success = held at the end, lift >= lift_target (10 cm), never
dropped, carried >= carry_distance (10 cm of the demo's 15: the hand lags and the object may
slip a little in the fingers), held_for >= hold_time (1 s); for the cup also upright within
max_tilt (15 deg: a full cup spills past ~16 deg) now and throughout the carry. Carrying is part
of the task because a grip only has to hold while the arm moves with it: a lift alone is passed
by grips (moved off the contact, turned) that lose the object, or let it swing, once it is
carried, and a person picking up a cup or spoon lifts it to take it somewhere. Reward when
touched: 0.3 + 0.7 * lift fraction (lift / lift_target, capped) * uprightness (cup: 1 up to
max_tilt, falling linearly to 0 at twice that, of the worst tilt while carried; the spoon: 1) *
(0.5 once dropped, else 1) * (0.6 + 0.25 * carried fraction + 0.15 * held_for fraction); not
touched: up to 0.3 as the palm came closer to the grasp region (the cup's axis from centre to
top, the spoon's handle) during the episode.

Task "pour from the cup" (task='pour_cup'): the cup is hollow (settings.pour_cup: a floor and a
ring of wall boxes) and holds loose material, material.count small free spheres laid on its
floor at reset (one layer, a seeded +-1 mm jitter). A static bowl (a DishGeometry with a floor)
stands beside it at a fixed offset in base axes (bowl_offset, 17 cm to the robot's right) plus
a seeded jitter of +-bowl_jitter per axis, so the single demonstration (grasp the cup by its
side, lift, carry the mouth over the bowl, tilt it towards the bowl) serves every placement.
A sphere is in the bowl when its centre lies within the bowl's inner radius (horizontally),
above its floor and below its rim. Success = at the end of the episode at least pour_success
(half) of the material is in the bowl and the cup is held (two hand parts, not the table).
Reward when touched: 0.3 + 0.2 * lift fraction (the highest lift while held / lift_target,
capped: the pour ends lower, over the bowl) + 0.5 * the fraction of the material in the bowl;
not touched: the approach shaping of the pick task.
Tilting in place spills the material on the table, lifting without a tilt keeps it in the cup,
and a palm laid over the mouth (the pick task's top grasp) keeps it in the cup too.

Task "open the drawer" (task='open_drawer'): a cabinet whose drawer runs on a damped slide joint
with dry friction; a bar handle stands off its front. The drawer front's centre is at the seeded
(x, y) on the table, the cabinet faces the robot (-x), its yaw the seeded yaw scaled to
+-max_cabinet_yaw. Only an opening by the hand on the handle counts: after every update in
which a hand part touches the handle bar (geom 'handle'), the drawer's outward travel since the
previous update adds to `pulled` (m; closing it back subtracts, never below 0). Reward = pulled
fraction (pulled / full travel, in [0, 1]); success = pulled fraction >= drawer_success. A push
cannot open it, and a pull on the front below the handle, or on the posts, does not count.

Task "scoop the grape" (task='scoop_grape'): a ladle-like spoon (settings.ladle: its handle on
one rest post, a neck dropping to a tray bowl that rests on the table, walled at the sides and
the neck, open at the tip) lies with its bowl at the back of a static dish (a ring wall, the
table its floor). Grapes (free spheres with friction and little rolling resistance) lie in the
dish ahead of the tray's open tip (grapes_in_bowl = 0 by default; seeded +-1 mm jitter). The
spoon points away from the robot, its yaw +-max_spoon_yaw. Success = the spoon held (two hand
parts, touching neither rest, dish nor table) and a grape resting in its bowl (within the
bowl's floor and walls, spoon frame) with its bottom >= scoop_lift above the table. Reward when
touched: 0.3 + 0.1 * spoon lift fraction + 0.6 * (bottom height of the highest grape in the
bowl / scoop_lift, capped); not touched: up to 0.3 by approach (to the handle). A grape gets
into the bowl only by a scoop: the tip pushed far enough along the dish floor that the grapes,
pushed ahead until the dish's far wall stops them, ride up over its 3 mm edge, then the tip
turned up about the tray before the lift (a push lifted straight up loses them off its bare
tip). A plain lift, a tilt without the push, a push lifted level or tip down, and an open hand
fail (test_tasks).

Task "stir with the spoon" (task='stir_spoon'): the same spoon on its rest and a static pot (a
ring wall with a floor) at a fixed offset from the spoon's resting bowl in base axes
(pot_offset) plus a seeded jitter of +-pot_jitter per axis. After every update in which the
spoon is held (two hand parts, touching neither rest nor table; the pot may be touched) with
its tip (the centre of its bowl's floor) inside the pot (within its inner radius, below its
rim) and at least stir_min_radius from the pot's vertical axis, the change of the tip's angle
about that axis since the previous update (wrapped to (-pi, pi]) adds to `stir_angle` (rad,
signed); updates that do not count break the chain (the next one only sets the reference).
Winding counts what a stir does: a stroke, a wiggle or a half circle winds little or unwinds,
a circle beside the pot or above its rim does not count. Success = |stir_angle| >= 2 pi *
stir_turns. Reward: 0.3 once the spoon has been held (else up to 0.3 by approach) + 0.7 *
|stir_angle| / (2 pi stir_turns) (capped).
"""

from typing import Optional, Tuple

import mujoco
import numpy as np

from deft_common import rotations
from deft_sim.mujoco_objects import CupGeometry, SpoonGeometry
from deft_sim.mujoco_settings import MujocoSettings


def wrap_angle(angle: float) -> float:
    """Return an angle (rad) wrapped to (-pi, pi]."""
    return float(np.pi - (np.pi - angle) % (2.0 * np.pi))


class TaskScoring:
    """
    The task side of MujocoWorld: contacts, lift, tilt, the stir's winding, success and reward.

    A mixin: it reads the world's settings `s`, `data`, `cup` and `spoon` (the task's geometries),
    `closest` (the palm's closest approach to the grasp region this episode) and what the world
    found in its model (`_obj_geoms`, `_supports`, `_group_of_geom`, `_obj_qadr`, `_rest_z`),
    and its pose queries (object_pose, tip_position, container_position, bowl_position,
    material_in_bowl, grape_positions, grapes_in_spoon). `track` calls the task's
    `_track_<task>` after each update (stir_spoon: `stir_angle`; open_drawer: `pulled`;
    pour_cup: `peak_lift`; pick_cup, pick_spoon: `dropped`, `carried`, `held_for`,
    `held_tilt`), `reset_tracking` clears what they follow, and `task_reward` is the
    task's `_score_<task>`.
    """

    s: MujocoSettings
    cup: CupGeometry
    data: mujoco.MjData
    spoon: SpoonGeometry
    closest: float
    peak_lift: float
    dropped: bool
    carried: float
    held_for: float
    held_tilt: float
    stir_angle: float
    pulled: float

    def _track_stir_spoon(self) -> None:
        """Add the held tip's turn about the pot's axis since the last update (stir_angle)."""
        parts, support = self.object_contacts()
        held = len(parts) >= 2 and not support
        self._was_held |= held
        tip = self.tip_position()
        rel = tip[:2] - self.container_position()[:2]
        r = float(np.hypot(*rel))
        if not (held and self.s.stir_min_radius <= r <= self.s.pot.radius
                and tip[2] <= self.s.pot.height):
            self._stir_last = None
            return
        angle = float(np.arctan2(rel[1], rel[0]))
        if self._stir_last is not None:
            self.stir_angle += wrap_angle(angle - self._stir_last)
        self._stir_last = angle

    def _track_open_drawer(self) -> None:
        """Add the drawer's travel since the last update to `pulled` if the hand is on the bar."""
        opened = self.opened
        if self._handle_touched():
            self.pulled = max(0.0, self.pulled + opened - self._last_opened)
        self._last_opened = opened

    def _handle_touched(self) -> bool:
        """Return whether a hand part touches the drawer's handle bar (geom 'handle')."""
        d = self.data
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if c.dist <= 1e-3 and self._handle_geom in (g1, g2) \
                    and (g2 if g1 == self._handle_geom else g1) in self._group_of_geom:
                return True
        return False

    def _track_pour_cup(self) -> None:
        """Follow the cup's highest lift while held (the pour ends lower, over the bowl)."""
        if self.held:
            self.peak_lift = max(self.peak_lift, self.lift)

    def _track_pick_cup(self) -> None:
        """Follow the hold of the cup (see _track_pick)."""
        self._track_pick()

    def _track_pick_spoon(self) -> None:
        """Follow the hold of the spoon (see _track_pick)."""
        self._track_pick()

    def _track_pick(self) -> None:
        """
        Follow the hold of a picked object after each update.

        Lift-off: the first update with the object held (two hand parts, no support) and
        lift >= lift_off (or lift_target, if lower); its horizontal position then is where
        `carried` is measured from. After lift-off, any update with the object not held or
        below that height again sets `dropped`; until then `carried` is the largest horizontal
        distance (m) from the lift-off point and `held_tilt` the largest tilt (rad). `held_for`
        is how long (simulated s, data.time) the object has been held at lift >= lift_target
        without a break (0 when it is not).
        """
        parts, support = self.object_contacts()
        held = len(parts) >= 2 and not support
        lift, now = self.lift, float(self.data.time)
        lift_off = min(self.s.lift_off, self.s.lift_target)
        where = self.object_pose()[0][:2]
        if self._lift_off is None and held and lift >= lift_off:
            self._lift_off = where.copy()
        if self._lift_off is not None:
            if not held or lift < lift_off:
                self.dropped = True
            elif not self.dropped:
                self.carried = max(self.carried, float(np.linalg.norm(where - self._lift_off)))
                self.held_tilt = max(self.held_tilt, self.tilt)
        if held and lift >= self.s.lift_target - 1e-6:
            if self._held_since is None:
                self._held_since = now
            self.held_for = now - self._held_since
        else:
            self._held_since, self.held_for = None, 0.0

    def grasp_region(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the ends of the object's grasp region, a segment (base frame).

        Cup: centre -> top centre; spoon: the handle between the rest's posts (a ladle's: from
        its post to the neck); drawer: the handle bar.
        """
        centre, q = self.object_pose()
        if self.s.obj == 'cup':
            a, b = [0.0, 0.0, 0.0], [0.0, 0.0, self.cup.height / 2.0]
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

    def uprightness(self, tilt: Optional[float] = None) -> float:
        """Return 1 within max_tilt of upright, falling linearly to 0 at twice max_tilt."""
        tilt = self.tilt if tilt is None else tilt
        excess = (tilt - self.s.max_tilt) / self.s.max_tilt
        return float(np.clip(1.0 - excess, 0.0, 1.0))

    @property
    def held(self) -> bool:
        """Return whether the hand holds the cup: two hand parts touch it, the table does not."""
        parts, table = self.cup_contacts()
        return len(parts) >= 2 and not table

    def track(self) -> None:
        """Update what the task follows over an episode (MujocoWorld.step calls it each update)."""
        tracker = getattr(self, f'_track_{self.s.task}', None)
        if tracker is not None:
            tracker()

    def reset_tracking(self) -> None:
        """Forget what the task followed (MujocoWorld.reset calls it)."""
        self.stir_angle = 0.0  # stir_spoon: signed angle (rad) the tip wound about the pot's axis
        self._stir_last, self._was_held = None, False
        self.pulled = 0.0  # open_drawer: travel (m) the drawer made with the hand on its handle
        self._last_opened = self.opened
        self.peak_lift = 0.0  # pour_cup: the cup's highest lift while held (m)
        # pick_cup, pick_spoon (_track_pick): the hold after lift-off
        self._lift_off, self._held_since = None, None
        self.dropped, self.carried, self.held_for, self.held_tilt = False, 0.0, 0.0, 0.0

    def task_reward(self) -> Tuple[float, bool]:
        """Return (reward in [0, 1], success) of the task (see the module docstring)."""
        return getattr(self, f'_score_{self.s.task}')()

    def _approach_shaping(self) -> float:
        """Return up to 0.3 as the palm came closer to the grasp region this episode."""
        closeness = 1.0 - self.closest / self.s.shaping_distance
        return 0.3 * float(np.clip(closeness, 0.0, 1.0))

    def _score_open_drawer(self) -> Tuple[float, bool]:
        frac = float(np.clip(self.pulled / self.s.drawer.travel, 0.0, 1.0))
        return frac, frac >= self.s.drawer_success - 1e-9

    def _score_stir_spoon(self) -> Tuple[float, bool]:
        parts, _ = self.object_contacts()
        grasp = 0.3 if self._was_held or parts else self._approach_shaping()
        frac = float(np.clip(abs(self.stir_angle) / (2 * np.pi * self.s.stir_turns), 0.0, 1.0))
        return grasp + 0.7 * frac, frac >= 1.0 - 1e-9

    def _score_pick_spoon(self) -> Tuple[float, bool]:
        return self._score_pick(1.0)

    def _score_pick(self, upright: float) -> Tuple[float, bool]:
        """
        Score a pick (see the module docstring); `upright` scales the lift's shaping (cup).

        The cup's success also needs it upright while carried: _score_pick_cup checks that.
        """
        parts, table = self.object_contacts()
        if not parts:
            return self._approach_shaping(), False
        s = self.s
        lifted = float(np.clip(self.lift / s.lift_target, 0.0, 1.0)) * upright
        carried = float(np.clip(self.carried / s.carry_distance, 0.0, 1.0)) \
            if s.carry_distance > 0 else 1.0
        hold = float(np.clip(self.held_for / s.hold_time, 0.0, 1.0)) if s.hold_time > 0 else 1.0
        kept = 0.5 if self.dropped else 1.0
        reward = 0.3 + 0.7 * lifted * kept * (0.6 + 0.25 * carried + 0.15 * hold)
        success = (len(parts) >= 2 and not table and not self.dropped
                   and self.lift >= s.lift_target - 1e-6
                   and self.carried >= s.carry_distance - 1e-9
                   and self.held_for >= s.hold_time - 1e-9)
        return reward, success

    def _score_scoop_grape(self) -> Tuple[float, bool]:
        parts, table = self.object_contacts()
        if not parts:
            return self._approach_shaping(), False
        frac = float(np.clip(self.lift / self.s.lift_target, 0.0, 1.0))
        held = len(parts) >= 2 and not table
        r = self.s.grapes.radius
        heights = self.grape_positions()[self.grapes_in_spoon(), 2] - r
        top = float(heights.max()) if heights.size else 0.0
        scooped = float(np.clip(top / self.s.scoop_lift, 0.0, 1.0))
        return 0.3 + 0.1 * frac + 0.6 * scooped, held and scooped >= 1.0 - 1e-9

    def _score_pick_cup(self) -> Tuple[float, bool]:
        tilt = max(self.tilt, self.held_tilt)  # the worst while carried, or now
        reward, success = self._score_pick(self.uprightness(tilt))
        return reward, success and tilt <= self.s.max_tilt

    def _score_pour_cup(self) -> Tuple[float, bool]:
        parts, table = self.object_contacts()
        if not parts:
            return self._approach_shaping(), False
        lift = float(np.clip(self.peak_lift / self.s.lift_target, 0.0, 1.0))
        poured = float(np.mean(self.material_in_bowl()))
        held = len(parts) >= 2 and not table
        return 0.3 + 0.2 * lift + 0.5 * poured, held and poured >= self.s.pour_success - 1e-9
