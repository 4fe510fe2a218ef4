"""
MJCF of the simulated 16-DOF hand, built from the hand config's joint names and limits.

The hand (LEAP-class proportions, 16 DOF) hangs on a free body 'palm' whose frame is the wrist
frame of deft_arm: origin at the centre of the palm's inner face, +z out of the palm (the
approach axis), fingers along +x, the index finger on +y; the finger roots sit on the palm's
mid-plane, so the flat hand's inner face is flush and can rest on a surface. Index, middle and
ring fingers carry `<finger>_abd` (side swing about the palm normal) and `<finger>_mcp`, `_pip`,
`_dip` (flexion towards +z). The thumb is a simplification of LEAP's: it sits on the palm's
proximal edge, opposite the fingers, and all four of its joints flex towards the palm
(`thumb_cmc_abd` is the swing into opposition), so the config's `closed` pose is a power grasp
in which thumb and fingers oppose each other. Joint names and limits come from the hand config,
so they match the driver.
"""

from dataclasses import dataclass
from typing import Sequence, Tuple

from deft_sim.mjcf import fmt

FINGERS = ('index', 'middle', 'ring')
FINGER_JOINTS = ('abd', 'mcp', 'pip', 'dip')
THUMB_JOINTS = ('thumb_cmc_abd', 'thumb_cmc', 'thumb_mcp', 'thumb_ip')
HAND_GROUPS = ('palm',) + FINGERS + ('thumb',)  # contact groups of the hand


@dataclass(frozen=True)
class HandGeometry:
    """Dimensions (m, kg) of the LEAP-class hand and its servos."""

    palm_half: Tuple[float, float, float] = (0.05, 0.048, 0.01)  # x (fingers), y, z thickness
    palm_mass: float = 0.30
    finger_spacing: float = 0.033  # y distance between neighbouring fingers
    finger_radius: float = 0.0095
    links: Tuple[float, float, float] = (0.045, 0.035, 0.032)  # proximal, middle, distal
    thumb_links: Tuple[float, float, float, float] = (0.02, 0.045, 0.035, 0.032)
    thumb_offset_y: float = 0.012  # thumb root, towards the index side
    link_density: float = 900.0
    # Position servos (Dynamixel XC330-class): stiffness kp (N m / rad) and a torque limit (N m):
    # a blocked finger presses with at most servo_torque, like a current-limited real servo.
    kp: float = 3.0
    servo_torque: float = 0.9
    joint_damping: float = 0.08
    armature: float = 0.002
    friction: float = 1.2  # rubber finger pads


def _capsule(name: str, vec: Sequence[float], g: HandGeometry, rgba: str) -> str:
    return (f'<geom name="{name}" type="capsule" fromto="0 0 0 {fmt(vec)}" '
            f'size="{g.finger_radius}" class="hand" rgba="{rgba}"/>')


def _joint(name: str, axis: Sequence[float], limits: dict) -> str:
    lo, hi = limits[name]
    return f'<joint name="{name}" axis="{fmt(axis)}" range="{lo:.6g} {hi:.6g}"/>'


def hand_xml(limits: dict, g: HandGeometry) -> Tuple[str, str]:
    """Return (body XML of the fingers and thumb inside 'palm', actuator XML), by joint name."""
    bodies, actuators = [], []
    skin, pad = '0.2 0.2 0.22 1', '0.93 0.93 0.9 1'
    for k, finger in enumerate(FINGERS):
        y = g.finger_spacing * (1 - k)  # index +y, middle 0, ring -y
        l1, l2, l3 = g.links
        bodies.append(
            f'<body name="{finger}_proximal" pos="{g.palm_half[0]} {y:.6g} {-g.palm_half[2]}">'
            + _joint(f'{finger}_abd', (0, 0, 1), limits)
            + _joint(f'{finger}_mcp', (0, -1, 0), limits)
            + _capsule(f'{finger}_proximal', (l1, 0, 0), g, skin)
            + f'<body name="{finger}_middle" pos="{l1} 0 0">'
            + _joint(f'{finger}_pip', (0, -1, 0), limits)
            + _capsule(f'{finger}_middle', (l2, 0, 0), g, skin)
            + f'<body name="{finger}_distal" pos="{l2} 0 0">'
            + _joint(f'{finger}_dip', (0, -1, 0), limits)
            + _capsule(f'{finger}_distal', (l3, 0, 0), g, pad)
            + '</body></body></body>')
    t0, t1, t2, t3 = g.thumb_links
    bodies.append(
        f'<body name="thumb_base" pos="{-g.palm_half[0]} {g.thumb_offset_y} {-g.palm_half[2]}">'
        + _joint('thumb_cmc_abd', (0, 1, 0), limits)
        + _capsule('thumb_base', (-t0, 0, 0), g, skin)
        + f'<body name="thumb_proximal" pos="{-t0} 0 0">'
        + _joint('thumb_cmc', (0, 1, 0), limits)
        + _capsule('thumb_proximal', (-t1, 0, 0), g, skin)
        + f'<body name="thumb_middle" pos="{-t1} 0 0">'
        + _joint('thumb_mcp', (0, 1, 0), limits)
        + _capsule('thumb_middle', (-t2, 0, 0), g, skin)
        + f'<body name="thumb_distal" pos="{-t2} 0 0">'
        + _joint('thumb_ip', (0, 1, 0), limits)
        + _capsule('thumb_distal', (-t3, 0, 0), g, pad)
        + '</body></body></body></body>')
    for name in list(limits):
        lo, hi = limits[name]
        actuators.append(
            f'<position name="{name}" joint="{name}" kp="{g.kp}" ctrlrange="{lo:.6g} {hi:.6g}" '
            f'forcerange="{-g.servo_torque} {g.servo_torque}"/>')
    return ''.join(bodies), ''.join(actuators)
