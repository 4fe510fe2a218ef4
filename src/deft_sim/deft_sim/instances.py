"""
Object instances of the twin's categories, and a split's configurations (instance + placement).

A configuration is what one episode is run on: an object instance (dimensions, mass, friction,
colour within the task's category) and a placement of it on the table. The train and test
configurations are disjoint in both:

- instances: each task's category has N_INSTANCES['train'] train instances (indices 0..N-1)
  and N_INSTANCES['test'] test instances (the indices after them). An instance is drawn from
  its index alone (a seeded generator per task and index), so the two sets never share one;
- placements: kinematic_world.SPLITS (the test region is a band the train region leaves out).

configuration(task, seed, split) picks the instance of a split from the seed (uniformly) and
draws the placement from the same seed, so a (task, seed, split) is one reproducible scene.

What varies, per category (factors of the nominal geometry in MujocoSettings; colours from a
palette per category):

- cup (pick_cup): radius x0.9-1.15, height x0.85-1.1, mass x0.7-1.4, friction x0.8-1.2;
- hollow cup (pour_cup): radius and height x0.95-1.1 (it still holds the material in one
  layer), mass x0.8-1.25, friction x0.8-1.2;
- spoon (pick_spoon): handle length x0.9-1.15 and width x1.0-1.2, bowl x0.85-1.15, mass
  x0.8-1.25, friction x0.8-1.2;
- ladle (scoop_grape, stir_spoon): handle length x0.9-1.1, mass x0.85-1.15, friction
  x0.85-1.15 (its tray, which the grapes and the pot are sized to, keeps its size);
- drawer (open_drawer): handle bar length x0.8-1.2, drawer mass x0.7-1.4, runner friction
  and damping x0.7-1.4.

`scale` is the instance's size factor per axis of the object frame (tasks.TaskSpec): a point
on the nominal object at p lies at scale * p on the instance (what a person grasping the cup by
its rim or the spoon by its handle adapts to).

The ranges are those in which the task's scripted demonstration (tasks.TASK_SPECS, scaled)
still succeeds with the robot hand: thinner handles than the nominal one slipped out of its
power grasp, and tall thin cups tipped past pick_cup's 15 deg (measured with task_checks).
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Tuple

import numpy as np

from deft_sim.kinematic_world import sample_placement
from deft_sim.mujoco_settings import TASKS, MujocoSettings

N_INSTANCES = {'train': 8, 'test': 4}
SPLIT_NAMES = tuple(N_INSTANCES)
_TASK_KEYS = {task: k for k, task in enumerate(TASKS)}  # seeds the instances of a task
PALETTES: Dict[str, Tuple[Tuple[float, float, float], ...]] = {
    'cup': ((0.80, 0.14, 0.12), (0.15, 0.35, 0.80), (0.90, 0.88, 0.82), (0.20, 0.60, 0.30),
            (0.95, 0.75, 0.15), (0.55, 0.25, 0.65), (0.95, 0.50, 0.15), (0.30, 0.30, 0.32),
            (0.10, 0.55, 0.60), (0.85, 0.40, 0.55), (0.50, 0.70, 0.15), (0.45, 0.25, 0.15)),
    'spoon': ((0.15, 0.35, 0.85), (0.75, 0.75, 0.78), (0.85, 0.20, 0.20), (0.20, 0.65, 0.35),
              (0.95, 0.70, 0.10), (0.10, 0.10, 0.12), (0.60, 0.35, 0.20), (0.85, 0.45, 0.70),
              (0.15, 0.60, 0.65), (0.95, 0.45, 0.10), (0.50, 0.30, 0.70), (0.55, 0.60, 0.20)),
    'drawer': ((0.45, 0.62, 0.42), (0.40, 0.50, 0.75), (0.85, 0.82, 0.75), (0.70, 0.30, 0.25),
               (0.35, 0.55, 0.60), (0.30, 0.30, 0.32), (0.85, 0.70, 0.35), (0.50, 0.65, 0.70),
               (0.65, 0.55, 0.75), (0.25, 0.45, 0.30), (0.75, 0.35, 0.55), (0.35, 0.35, 0.55)),
}


@dataclass(frozen=True)
class ObjectInstance:
    """One object of a task's category: its split, factors of the nominal geometry, colour."""

    task: str
    index: int  # 0..N_INSTANCES['train']-1: train; the N_INSTANCES['test'] after: test
    split: str
    size: Tuple[float, ...]  # the category's size factors (see factors())
    mass: float  # factor of the nominal mass
    friction: float  # factor of the nominal friction (drawer: of the runners' friction)
    rgb: Tuple[float, float, float]

    @property
    def name(self) -> str:
        """Return a short id, e.g. 'pick_cup/train/3'."""
        return f'{self.task}/{self.split}/{self.index}'

    @property
    def scale(self) -> Tuple[float, float, float]:
        """Return the size factor along each axis of the object frame (see the module doc)."""
        if self.task in ('pick_cup', 'pour_cup'):
            r, h = self.size
            return (r, r, h)
        if self.task == 'pick_spoon':
            length, width, _ = self.size
            return (length, width, 1.0)
        if self.task in ('scoop_grape', 'stir_spoon'):
            return (self.size[0], 1.0, 1.0)
        return (1.0, 1.0, 1.0)  # the drawer's handle stays where it is; its bar's length varies

    def settings(self, base: MujocoSettings) -> MujocoSettings:
        """Return `base` with the task's object replaced by this instance."""
        rgba = (*self.rgb, 1.0)
        if self.task in ('pick_cup', 'pour_cup'):
            field = 'cup' if self.task == 'pick_cup' else 'pour_cup'
            cup = getattr(base, field)
            r, h = self.size
            return replace(base, **{field: replace(cup, radius=cup.radius * r,
                                                   height=cup.height * h,
                                                   mass=cup.mass * self.mass,
                                                   friction=cup.friction * self.friction,
                                                   rgba=rgba)})
        if self.task == 'pick_spoon':
            sp = base.spoon
            length, width, bowl = self.size
            hx, hy, hz = sp.handle_half
            return replace(base, spoon=replace(
                sp, handle_half=(hx * length, hy * width, hz),
                bowl_half=tuple(v * bowl for v in sp.bowl_half), mass=sp.mass * self.mass,
                friction=sp.friction * self.friction, rgba=rgba))
        if self.task in ('scoop_grape', 'stir_spoon'):
            la = base.ladle
            hx, hy, hz = la.handle_half
            return replace(base, ladle=replace(
                la, handle_half=(hx * self.size[0], hy, hz), mass=la.mass * self.mass,
                friction=la.friction * self.friction, rgba=rgba))
        dr = base.drawer
        return replace(base, drawer=replace(
            dr, handle_length=dr.handle_length * self.size[0],
            drawer_mass=dr.drawer_mass * self.mass,
            slide_friction=dr.slide_friction * self.friction,
            slide_damping=dr.slide_damping * self.size[1], rgba=rgba))


# per task: (low, high) of each size factor, mass, friction; the palette
_RANGES = {
    'pick_cup': (((0.9, 1.15), (0.85, 1.1)), (0.7, 1.4), (0.8, 1.2), 'cup'),
    'pour_cup': (((0.95, 1.1), (0.9, 1.1)), (0.8, 1.25), (0.8, 1.2), 'cup'),
    'pick_spoon': (((0.9, 1.15), (1.0, 1.2), (0.85, 1.15)), (0.8, 1.25), (0.8, 1.2), 'spoon'),
    'scoop_grape': (((0.9, 1.1),), (0.85, 1.15), (0.85, 1.15), 'spoon'),
    'stir_spoon': (((0.9, 1.1),), (0.85, 1.15), (0.85, 1.15), 'spoon'),
    'open_drawer': (((0.8, 1.2), (0.7, 1.4)), (0.7, 1.4), (0.7, 1.4), 'drawer'),
}


def instance(task: str, index: int) -> ObjectInstance:
    """Return instance `index` of a task's category (ValueError for an unknown task or index)."""
    if task not in _RANGES:
        raise ValueError(f'unknown task {task!r}; expected one of {", ".join(TASKS)}')
    total = sum(N_INSTANCES.values())
    if not 0 <= index < total:
        raise ValueError(f'instance index must be in [0, {total}), got {index}')
    split = 'train' if index < N_INSTANCES['train'] else 'test'
    sizes, mass, friction, palette = _RANGES[task]
    rng = np.random.default_rng([7331, _TASK_KEYS[task], index])
    size = tuple(float(rng.uniform(lo, hi)) for lo, hi in sizes)
    rgb = PALETTES[palette][index]  # one colour per instance: train and test never share one
    return ObjectInstance(task, index, split, size, float(rng.uniform(*mass)),
                          float(rng.uniform(*friction)), rgb)


def instances(task: str, split: str) -> List[ObjectInstance]:
    """Return the instances of a task's split (ValueError for an unknown split)."""
    if split not in N_INSTANCES:
        raise ValueError(f'unknown split {split!r}; expected one of {", ".join(SPLIT_NAMES)}')
    start = 0 if split == 'train' else N_INSTANCES['train']
    return [instance(task, start + k) for k in range(N_INSTANCES[split])]


def configuration(task: str, seed: int, split: str
                  ) -> Tuple[ObjectInstance, Tuple[float, float, float, np.random.Generator]]:
    """
    Return the configuration of (task, seed, split): its instance and its placement.

    The placement is kinematic_world.sample_placement(seed, split) (x, y, yaw and the
    generator for what the scene draws after it); the instance is drawn from an independent
    stream of the same seed (seed >= 0).
    """
    placement = sample_placement(seed, split)
    pool = instances(task, split)
    pick = np.random.default_rng([seed, 101]).integers(len(pool))
    return pool[int(pick)], placement
