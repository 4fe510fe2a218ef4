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

from typing import List, Optional, Tuple

import numpy as np

from deft_common import rotations
from deft_common.rotations import Transform
from deft_sim.human_hand import SKIN_TONES, HumanHand, human_hand_xml
from deft_sim.human_labels import crop_box, cut, load_hand, to_crop
from deft_sim.human_scene import (
    CAMERA_TO_BASE,
    DISTRACTOR_COLOURS,
    DISTRACTOR_PARK,
    HUMAN_GRASPS,
    N_DISTRACTORS,
    ROBOT_PARK,
    TABLE_COLOURS,
    Clip,
    DemoSettings,
    Person,
    Viewpoint,
    _frame,
    distractors_xml,
    gmm_centres,
    human_pose,
)


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
