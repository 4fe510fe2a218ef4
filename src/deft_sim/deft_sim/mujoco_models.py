"""
MJCF of the physically simulated tabletop, built in code from the hand config and the camera.

Frames and units: metres, radians, kilograms; base_link is the world frame, the table top is the
plane z = 0 (as in the kinematic world). MuJoCo quaternions are (w, x, y, z); every quaternion
in this package's public API is ROS order (x, y, z, w) (mjcf converts).

The hand's MJCF is built in mujoco_hand, the task objects' in mujoco_objects, on the
conventions of mjcf; this module assembles the scene (table, floor, lights, camera, the wrist's
weld, the hand and the task's objects) and re-exports those modules' names.
"""

from typing import Optional, Sequence, Tuple

import numpy as np

from deft_sim.mjcf import fmt, mj_quat, optical_to_mujoco_camera, ros_quat
from deft_sim.mujoco_hand import (
    FINGER_JOINTS,
    FINGERS,
    HAND_GROUPS,
    THUMB_JOINTS,
    HandGeometry,
    hand_xml,
)
from deft_sim.mujoco_objects import (
    LADLE,
    CupGeometry,
    DishGeometry,
    DrawerGeometry,
    GrapeGeometry,
    SpoonGeometry,
    cup_xml,
    dish_xml,
    drawer_xml,
    grapes_xml,
    spoon_xml,
)

__all__ = [
    'CONTACT_SOLREF', 'FLOOR_Z', 'OBJECTS', 'TABLE_EXTENT', 'TABLE_THICKNESS', 'TIMESTEP',
    'WELD_SOLIMP', 'WELD_SOLREF', 'build_mjcf', 'fmt', 'mj_quat', 'optical_to_mujoco_camera',
    'ros_quat',
    # mujoco_hand
    'FINGER_JOINTS', 'FINGERS', 'HAND_GROUPS', 'THUMB_JOINTS', 'HandGeometry', 'hand_xml',
    # mujoco_objects
    'LADLE', 'CupGeometry', 'DishGeometry', 'DrawerGeometry', 'GrapeGeometry',
    'SpoonGeometry', 'cup_xml', 'dish_xml', 'drawer_xml', 'grapes_xml', 'spoon_xml',
]

TABLE_EXTENT = ((0.0, 1.0), (-0.6, 0.6))  # table top x, y extent in base_link (as the fake world)
TABLE_THICKNESS = 0.04
FLOOR_Z = -0.75
TIMESTEP = 0.002
WELD_SOLREF = (0.02, 1.0)  # wrist weld: time constant (s), damping ratio of the soft constraint
# Constant impedance 0.5 (MuJoCo's default 0.9..0.95 makes the weld ~50x stiffer): with the
# world's max_wrist_lead of 3 cm the hand presses on the table with ~66 N (measured), and sags
# ~1 mm holding the cup; the wrist lags ~8 mm behind a 0.25 m/s motion.
WELD_SOLIMP = (0.5, 0.5, 0.001)
CONTACT_SOLREF = (0.005, 1.0)  # stiffer than MuJoCo's default 0.02 s: mm, not cm, of penetration
OBJECTS = ('cup', 'spoon', 'drawer')
# the default geometries (frozen: one instance serves every call)
DEFAULT_HAND, DEFAULT_CUP = HandGeometry(), CupGeometry()
DEFAULT_SPOON, DEFAULT_DRAWER = SpoonGeometry(), DrawerGeometry()


def build_mjcf(joint_names: Sequence[str], lower: Sequence[float], upper: Sequence[float],
               camera_position: Sequence[float], camera_quat_optical: Sequence[float],
               fovy_deg: float, render_size: Tuple[int, int],
               hand: HandGeometry = DEFAULT_HAND, cup: CupGeometry = DEFAULT_CUP,
               home_position: Sequence[float] = (0.2, 0.0, 0.45),
               home_quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
               obj: str = 'cup',
               spoon: SpoonGeometry = DEFAULT_SPOON,
               drawer: DrawerGeometry = DEFAULT_DRAWER,
               containers: Sequence[Tuple[str, DishGeometry]] = (),
               grapes: Optional[GrapeGeometry] = None,
               material: Optional[GrapeGeometry] = None, extra_bodies: str = '') -> str:
    """
    Return the MJCF XML of the table, the task object, the mocap-driven hand and the camera.

    `obj` is one of OBJECTS: the cup (free body 'cup'), the spoon on its rest (free body
    'spoon', static 'spoon_rest'), or the cabinet (static 'cabinet') whose body 'drawer' slides
    on joint 'drawer_slide'. `containers` are (body name, DishGeometry) of static hollow
    containers (placed by the world at reset: the dish, the pot, the pour task's bowl);
    `grapes` adds free spheres 'grape_<i>', `material` free spheres 'material_<i>' (what the
    pour task pours: the world places them in the hollow cup at reset). `extra_bodies` is MJCF
    added to the world body as it is (e.g. the simulated human's hand, distractors).

    `joint_names`, `lower`, `upper` are the hand config's (every joint of FINGERS x
    FINGER_JOINTS and THUMB_JOINTS must be there, else ValueError). Quaternions are ROS order.
    """
    expected = {f'{f}_{j}' for f in FINGERS for j in FINGER_JOINTS} | set(THUMB_JOINTS)
    if set(joint_names) != expected:
        missing = sorted(expected - set(joint_names))
        extra = sorted(set(joint_names) - expected)
        raise ValueError(f'hand config does not describe the 16-DOF four-finger hand: '
                         f'missing {missing}, unexpected {extra}')
    if obj not in OBJECTS:
        raise ValueError(f'unknown object {obj!r}; expected one of {", ".join(OBJECTS)}')
    limits = {n: (float(lo), float(hi)) for n, lo, hi in zip(joint_names, lower, upper)}
    bodies, actuators = hand_xml(limits, hand)
    (x0, x1), (y0, y1) = TABLE_EXTENT
    table_half = ((x1 - x0) / 2, (y1 - y0) / 2, TABLE_THICKNESS / 2)
    table_pos = ((x0 + x1) / 2, (y0 + y1) / 2, -TABLE_THICKNESS / 2)
    object_xml = {'cup': lambda: cup_xml(cup), 'spoon': lambda: spoon_xml(spoon),
                  'drawer': lambda: drawer_xml(drawer)}[obj]()
    exclude = '<contact><exclude body1="cabinet" body2="drawer"/></contact>' \
        if obj == 'drawer' else ''
    width, height = render_size
    extras = ''.join(dish_xml(name, dish) for name, dish in containers)
    extras += '' if grapes is None else grapes_xml(grapes)
    extras += '' if material is None else grapes_xml(material, 'material')
    home = fmt(home_position) + f'" quat="{fmt(mj_quat(home_quat))}'
    ph = hand.palm_half
    return f"""<mujoco model="deft_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <statistic extent="1" center="0.5 0 0"/>
  <visual>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <map znear="0.01" zfar="20"/>
    <quality shadowsize="1024"/>
  </visual>
  <asset>
    <material name="matte" specular="0.05" shininess="0.1"/>
  </asset>
  <default>
    <geom material="matte" solref="{fmt(CONTACT_SOLREF)}" solimp="0.95 0.99 0.001"/>
    <joint damping="{hand.joint_damping}" armature="{hand.armature}"/>
    <default class="hand">
      <geom contype="2" conaffinity="1" density="{hand.link_density}"
            friction="{hand.friction} 0.01 0.0001" condim="4"/>
    </default>
  </default>
  <worldbody>
    <light name="sun" pos="0.5 0.3 2.0" dir="0 -0.15 -1" diffuse="0.6 0.6 0.6"
           castshadow="false"/>
    <light name="fill" pos="0.0 -0.5 1.5" dir="0.3 0.3 -1" diffuse="0.3 0.3 0.3"
           castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 {FLOOR_Z}" size="5 5 0.1" rgba="0.27 0.27 0.29 1"
          contype="1" conaffinity="3"/>
    <geom name="table" type="box" pos="{fmt(table_pos)}" size="{fmt(table_half)}"
          rgba="0.59 0.48 0.36 1" contype="1" conaffinity="3" friction="0.6 0.005 0.0001"/>
    <camera name="rgbd" pos="{fmt(camera_position)}"
            quat="{fmt(optical_to_mujoco_camera(camera_quat_optical))}" fovy="{fovy_deg:.9g}"/>
    <body name="wrist_target" mocap="true" pos="{home}"/>
    <body name="palm" pos="{home}" gravcomp="1">
      <freejoint name="palm_free"/>
      <inertial pos="0 0 {-ph[2]}" mass="{hand.palm_mass}"
                diaginertia="{fmt(np.array([ph[1]**2 + ph[2]**2, ph[0]**2 + ph[2]**2,
                                           ph[0]**2 + ph[1]**2]) * hand.palm_mass / 3)}"/>
      <geom name="palm" type="box" size="{fmt(ph)}" pos="0 0 {-ph[2]}" class="hand"
            rgba="0.2 0.2 0.22 1"/>
      {bodies}
    </body>
    {object_xml}
    {extras}
    {extra_bodies}
  </worldbody>
  {exclude}
  <equality>
    <weld name="wrist" body1="wrist_target" body2="palm" relpose="0 0 0 1 0 0 0"
          solref="{fmt(WELD_SOLREF)}" solimp="{fmt(WELD_SOLIMP)}"/>
  </equality>
  <actuator>{actuators}</actuator>
</mujoco>
"""
