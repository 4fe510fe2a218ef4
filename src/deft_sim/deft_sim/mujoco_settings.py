"""The tasks of the MuJoCo world and its settings: placement, scoring and robot-model numbers."""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from deft_sim.mujoco_hand import HandGeometry
from deft_sim.mujoco_objects import (
    LADLE,
    CupGeometry,
    DishGeometry,
    DrawerGeometry,
    GrapeGeometry,
    SpoonGeometry,
)

TASKS = ('pick_cup', 'pour_cup', 'pick_spoon', 'open_drawer', 'scoop_grape', 'stir_spoon')
OBJECT_OF_TASK = {'pick_cup': 'cup', 'pour_cup': 'cup', 'pick_spoon': 'spoon',
                  'open_drawer': 'drawer', 'scoop_grape': 'spoon', 'stir_spoon': 'spoon'}
LADLE_TASKS = ('scoop_grape', 'stir_spoon')  # tasks whose spoon is settings.ladle


@dataclass(frozen=True)
class MujocoSettings:
    """Task, placement and robot-model settings of the MuJoCo world."""

    lift_target: float = 0.10
    # m: pick tasks: a held object this high (or lift_target, if lower) has left its support
    lift_off: float = 0.02
    carry_distance: float = 0.10  # m: pick tasks: horizontal travel while held (demo: 15 cm)
    hold_time: float = 1.0  # s: pick tasks: held at lift_target continuously at the end
    # rad: pick_cup: the cup's tilt while held after lift-off; a full cup (1 cm below the rim,
    # 3.5 cm radius) spills past atan(1 / 3.5) = 16 deg
    max_tilt: float = np.radians(15.0)
    shaping_distance: float = 0.15
    task: str = 'pick_cup'  # one of TASKS
    # reset(seed, split) sets up the configuration's object instance (instances.py); False: the
    # nominal object below in every configuration (only the placement varies)
    instances: bool = True
    bowl_offset: Tuple[float, float] = (0.0, -0.17)  # m: bowl centre minus cup centre (x, y)
    bowl_jitter: float = 0.01  # m: seeded jitter of the bowl's centre, +- per axis
    max_wrist_lead: float = 0.03  # m: bounds the weld's pull (the arm's force limit)
    max_update_dt: float = 0.1  # s: longest physics advance of one update() on the wall clock
    # palm down, as deft_arm's home_pose: out of the camera's view of the objects (I0 whole)
    home_pose: Tuple[float, ...] = (0.2, 0.0, 0.45, 1.0, 0.0, 0.0, 0.0)
    hand: HandGeometry = HandGeometry()
    cup: CupGeometry = CupGeometry()
    # pour_cup: the hollow cup, the material in it (free spheres) and the bowl it goes into
    # (sliding contacts only and 12 wall segments: the spheres cost physics time; the bowl's
    # walls stop them rolling on)
    pour_cup: CupGeometry = CupGeometry(wall=0.005, segments=12)
    material: GrapeGeometry = GrapeGeometry(count=10, radius=0.005, mass=0.002, friction=0.5,
                                            condim=3, rgba=(0.95, 0.8, 0.3, 1.0))
    bowl: DishGeometry = DishGeometry(radius=0.06, height=0.04, floor=0.004,
                                      rgba=(0.85, 0.85, 0.8, 1.0),
                                      inside_rgba=(0.35, 0.3, 0.25, 1.0))
    pour_success: float = 0.5  # fraction of the material in the bowl at the end: success
    spoon: SpoonGeometry = SpoonGeometry()
    drawer: DrawerGeometry = DrawerGeometry()
    drawer_success: float = 0.6  # travel fraction pulled by the handle: open_drawer success
    max_cabinet_yaw: float = np.radians(10.0)  # rad: the cabinet's yaw range is +- this
    ladle: SpoonGeometry = LADLE  # the spoon of scoop_grape and stir_spoon
    max_spoon_yaw: float = np.radians(10.0)  # rad: scoop/stir spoon's yaw range is +- this
    dish: DishGeometry = DishGeometry()  # scoop_grape: the grapes' dish
    dish_shift: float = 0.02  # m: dish centre ahead of the tray's centre, along the spoon
    grapes: GrapeGeometry = GrapeGeometry()
    grapes_in_bowl: int = 0  # scoop_grape: grapes in the spoon's tray at reset (0: a scoop)
    scoop_lift: float = 0.05  # m: a scooped grape's bottom above the table (success)
    pot: DishGeometry = DishGeometry(radius=0.08, height=0.045, floor=0.004,
                                           rgba=(0.55, 0.6, 0.65, 1.0),
                                           inside_rgba=(0.3, 0.32, 0.35, 1.0))
    pot_offset: Tuple[float, float] = (0.15, 0.0)  # m: pot centre minus the resting tray's (x, y)
    pot_jitter: float = 0.005  # m: seeded jitter of the pot's centre, +- per axis
    stir_turns: float = 1.0  # turns the held spoon's tip must wind about the pot's axis: success
    stir_min_radius: float = 0.005  # m: the tip nearer the pot's axis than this winds nothing

    @property
    def obj(self) -> str:
        """Return the name of the task's object body: cup, spoon or drawer."""
        return OBJECT_OF_TASK[self.task]

    @property
    def cup_geometry(self) -> CupGeometry:
        """Return the geometry of the task's cup (the hollow pour_cup for the pour)."""
        return self.pour_cup if self.task == 'pour_cup' else self.cup

    @property
    def spoon_geometry(self) -> SpoonGeometry:
        """Return the geometry of the task's spoon (the ladle for scoop and stir)."""
        return self.ladle if self.task in LADLE_TASKS else self.spoon

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r}; expected one of {", ".join(TASKS)}')
        if len(self.bowl_offset) != 2 or not 0 <= self.bowl_jitter < np.hypot(
                *self.bowl_offset) - self.pour_cup.radius - self.bowl.radius - self.bowl.wall:
            raise ValueError('bowl_offset needs (x, y) m with the bowl clear of the cup, '
                             'bowl_jitter >= 0')
        if self.pour_cup.wall <= 0 or not 0 < self.pour_success <= 1:
            raise ValueError('pour_cup needs a hollow cup (wall > 0), pour_success in (0, 1]')
        if len(self.pot_offset) != 2 or self.pot_jitter < 0:
            raise ValueError('pot_offset needs (x, y) m, pot_jitter must be >= 0')
        if not 0 <= self.grapes_in_bowl <= min(4, self.grapes.count):
            raise ValueError('grapes_in_bowl must be in [0, min(4, grapes.count)]')
        if self.scoop_lift <= 0 or self.stir_turns <= 0 or self.stir_min_radius < 0:
            raise ValueError('scoop_lift and stir_turns must be > 0, stir_min_radius >= 0')
        if not self.ladle.ladle or not 0 <= self.max_spoon_yaw < np.pi / 4:
            raise ValueError('ladle needs neck_drop > 0, max_spoon_yaw in [0, pi/4)')
        if not 0 < self.max_tilt < np.pi / 2:
            raise ValueError('max_tilt must be in (0, pi/2) rad')
        if not self.lift_off > 0 or self.carry_distance < 0 or self.hold_time < 0:
            raise ValueError('lift_off must be > 0, carry_distance and hold_time >= 0')
        if self.lift_target <= 0 or self.shaping_distance <= 0 or self.max_wrist_lead <= 0:
            raise ValueError('lift_target, shaping_distance and max_wrist_lead must be > 0')
        if not 0 < self.drawer_success <= 1 or not 0 <= self.max_cabinet_yaw < np.pi / 4:
            raise ValueError('drawer_success must be in (0, 1], max_cabinet_yaw in [0, pi/4)')
        if self.max_update_dt <= 0:
            raise ValueError('max_update_dt must be > 0')
        if len(self.home_pose) != 7:
            raise ValueError('home_pose needs x y z qx qy qz qw')
