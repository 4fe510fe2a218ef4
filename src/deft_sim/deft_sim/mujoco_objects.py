"""
MJCF of the tasks' objects, built in code from their geometry.

The cup (hollow in pour_cup, holding loose material), the spoon on its rest (and the ladle),
the dish, the pot and the pour task's bowl (DishGeometry), the grapes and the poured material
(GrapeGeometry: free spheres), and the cabinet with its drawer. Each object has a frozen
geometry dataclass (metres, kilograms; checked on creation) and a builder that returns its
MJCF bodies; the scene (mujoco_models.build_mjcf) places them in the world body. Static objects
are mocap bodies the world places at reset.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from deft_sim.mjcf import fmt


@dataclass(frozen=True)
class CupGeometry:
    """
    A cup of `radius` and `height`; mass in kg.

    `wall` 0: a closed cylinder (collision) with a dark opening drawn on top (pick_cup). `wall`
    > 0: hollow, a floor `floor` thick and a ring of `segments` wall boxes `wall` thick, open at
    the top, so it holds loose material (pour_cup).
    """

    radius: float = 0.035
    height: float = 0.10
    mass: float = 0.12
    friction: float = 1.0
    rgba: Tuple[float, float, float, float] = (0.8, 0.14, 0.12, 1.0)
    wall: float = 0.0  # m: wall thickness (0: a solid cylinder)
    floor: float = 0.006  # m: floor thickness of a hollow cup
    segments: int = 16

    def __post_init__(self):
        if self.wall < 0 or self.wall >= self.radius or not 0 < self.floor < self.height:
            raise ValueError('a cup needs 0 <= wall < radius and 0 < floor < height (m)')
        if self.segments < 8:
            raise ValueError('a hollow cup needs >= 8 wall segments')

    @property
    def inner_radius(self) -> float:
        """Return the radius of the inside (the outer radius of a solid cup)."""
        return self.radius - self.wall


@dataclass(frozen=True)
class SpoonGeometry:
    """
    A spoon on a knife rest (pick_spoon): a flat handle (box) and a shallow bowl (ellipsoid).

    Spoon frame: origin at the handle's centre, +x along the handle towards the bowl, +z up.
    The rest is two static posts under the handle's ends, so the handle lies `rest_height`
    above the table with room beneath it for the fingers, as a spoon lying on a real knife rest.

    With `neck_drop` > 0 the spoon is a ladle (scoop_grape, stir_spoon): a neck drops from the
    handle's end to a tray-like bowl `neck_drop` below the handle's centre (a flat floor of half
    size bowl_half, two side walls `tray_wall` high, the neck as its back wall, open at the
    tip), and the rest is one post under the handle's end: the tray rests on the table.
    """

    handle_half: Tuple[float, float, float] = (0.07, 0.009, 0.005)  # x (length), y, z (m)
    bowl_half: Tuple[float, float, float] = (0.03, 0.021, 0.007)  # ellipsoid semi-axes (m)
    mass: float = 0.05
    friction: float = 1.0
    rest_height: float = 0.05  # m: the handle's underside above the table
    rest_half: Tuple[float, float] = (0.006, 0.02)  # post half size along, across the handle
    rgba: Tuple[float, float, float, float] = (0.15, 0.35, 0.85, 1.0)
    neck_drop: float = 0.0  # m: a ladle's tray floor centre below the handle's centre
    tray_wall: float = 0.0  # m: a ladle's tray side walls above its floor
    neck_half: float = 0.004  # m: half the neck's thickness along the handle
    tray_lip: float = 0.015  # m: a ladle tray's bare floor ahead of its side walls (the tip)
    bowl_friction: float = 1.0  # a ladle's neck and tray (smooth: grapes roll and slide out)

    def __post_init__(self):
        if self.neck_drop < 0 or self.tray_wall < 0:
            raise ValueError('neck_drop and tray_wall must be >= 0')

    @property
    def ladle(self) -> bool:
        """Return whether the bowl is a tray hanging below the handle on a neck."""
        return self.neck_drop > 0

    @property
    def post_x(self) -> Tuple[float, ...]:
        """Return the x of the rest posts in the spoon frame (under handle end and neck)."""
        end = -self.handle_half[0] + self.rest_half[0] + 0.002
        return (end,) if self.ladle else (end, self.handle_half[0] + 0.5 * self.bowl_half[0])

    @property
    def handle_span(self) -> Tuple[float, float]:
        """Return the x range (spoon frame) of the handle the hand can grasp."""
        if self.ladle:
            return self.post_x[0], self.handle_half[0] - 2 * self.neck_half
        return self.post_x[0], self.post_x[1]

    @property
    def bowl_centre(self) -> Tuple[float, float, float]:
        """Return the spoon's tip point, spoon frame: a ladle's tray floor (top), else bowl top."""
        hx, hz = self.handle_half[0], self.handle_half[2]
        bx, _, bz = self.bowl_half
        if self.ladle:
            return (hx - 2 * self.neck_half + bx, 0.0, -self.neck_drop + bz)
        return (hx + bx - 0.004, 0.0, 2 * bz - hz)


LADLE = SpoonGeometry(handle_half=(0.09, 0.009, 0.005), bowl_half=(0.032, 0.025, 0.0015),
                      mass=0.06, rest_height=0.065, neck_drop=0.0685, tray_wall=0.012,
                      bowl_friction=0.3)


@dataclass(frozen=True)
class DishGeometry:
    """
    A static round container (the dish, the pot, the bowl): a ring of wall segments.

    scoop_grape's dish, stir_spoon's pot, pour_cup's bowl. The inside has a floor of `floor`
    thickness (0: the table is its floor). Frame: the centre of its footprint on the table, +z
    up.
    """

    radius: float = 0.065  # m: inner radius of the wall
    height: float = 0.025  # m: the rim above the table
    wall: float = 0.006  # m: wall thickness
    floor: float = 0.0  # m: floor thickness (0: no floor geom)
    segments: int = 20
    friction: float = 0.5
    rgba: Tuple[float, float, float, float] = (0.92, 0.9, 0.82, 1.0)
    inside_rgba: Tuple[float, float, float, float] = (0.55, 0.5, 0.45, 1.0)

    def __post_init__(self):
        if self.radius <= 0 or self.height <= self.floor or self.wall <= 0 or self.floor < 0:
            raise ValueError('a dish needs radius, wall > 0 and 0 <= floor < height (m)')
        if self.segments < 8:
            raise ValueError('a dish needs >= 8 wall segments')


@dataclass(frozen=True)
class GrapeGeometry:
    """Free spheres with friction and a little rolling resistance: grapes, poured material."""

    count: int = 6
    radius: float = 0.009
    mass: float = 0.006
    friction: float = 0.3
    # m: rolling friction, so a grape settles on the flat table; small enough that grapes on
    # a tray lifted level roll out of its open tip (a scoop has to turn the tip up)
    rolling: float = 0.00002
    condim: int = 6  # contact dimensions: 6 with rolling friction, 3 (cheaper) sliding only
    rgba: Tuple[float, float, float, float] = (0.45, 0.75, 0.2, 1.0)

    def __post_init__(self):
        if self.count < 1 or self.radius <= 0 or self.mass <= 0 or self.condim not in (3, 4, 6):
            raise ValueError('grapes need count >= 1, radius > 0, mass > 0, condim 3, 4 or 6')


@dataclass(frozen=True)
class DrawerGeometry:
    """
    A cabinet with one drawer on a slide joint and a bar handle (open_drawer).

    Cabinet frame: origin on the table below the drawer front's centre, +x into the cabinet
    (away from the robot), +z up. The drawer slides out along -x, up to `travel`.
    """

    width: float = 0.24  # cabinet outer width (y)
    depth: float = 0.22  # x
    height: float = 0.26  # z
    wall: float = 0.012
    drawer_bottom: float = 0.10  # z of the drawer's underside
    drawer_height: float = 0.12
    travel: float = 0.16  # m: full opening
    slide_damping: float = 3.0  # N s / m
    slide_friction: float = 1.0  # N (dry friction of the runners)
    drawer_mass: float = 0.6
    handle_length: float = 0.12
    handle_radius: float = 0.0065
    handle_standoff: float = 0.035  # bar axis in front of the drawer front (m)
    handle_z: float = 0.17  # bar height above the table (m)
    rgba: Tuple[float, float, float, float] = (0.45, 0.62, 0.42, 1.0)  # the drawer front
    handle_rgba: Tuple[float, float, float, float] = (0.9, 0.75, 0.1, 1.0)


def spoon_xml(spoon: SpoonGeometry, rest: bool = True) -> str:
    """Return the spoon (free body 'spoon') and (rest) its rest (static mocap 'spoon_rest')."""
    hx, hy, hz = spoon.handle_half
    bx, by, bz = spoon.bowl_half
    px, py = spoon.rest_half
    h = spoon.rest_height
    posts = ''.join(
        f'<geom name="spoon_rest_{i}" type="box" size="{px} {py} {h / 2}" pos="{x:.6g} 0 {h / 2}" '
        f'rgba="0.55 0.55 0.58 1" contype="1" conaffinity="3"/>'
        for i, x in enumerate(spoon.post_x))
    geom = f'friction="{spoon.friction} 0.01 0.0001" condim="4" contype="1" conaffinity="3"'
    colour = f'rgba="{fmt(spoon.rgba)}"'
    rest_xml = f'<body name="spoon_rest" mocap="true" pos="0.5 0 0">{posts}</body>'
    if spoon.ladle:
        nt, drop, wall = spoon.neck_half, spoon.neck_drop, spoon.tray_wall
        cx, _, _ = spoon.bowl_centre
        wx = bx - spoon.tray_lip / 2  # the side walls end tray_lip short of the open tip
        m = spoon.mass
        smooth = geom.replace(f'friction="{spoon.friction} ', f'friction="{spoon.bowl_friction} ')
        bowl = (f'<geom name="spoon_neck" type="box" size="{nt} {by} {(drop + bz + hz) / 2:.6g}" '
                f'pos="{hx - nt:.6g} 0 {(hz - drop - bz) / 2:.6g}" mass="{0.08 * m:.6g}" '
                f'{colour} {smooth}/>'
                f'<geom name="spoon_bowl" type="box" size="{bx} {by} {bz}" '
                f'pos="{cx:.6g} 0 {-drop:.6g}" mass="{0.2 * m:.6g}" {colour} {smooth}/>'
                + ''.join(f'<geom name="spoon_wall_{k}" type="box" '
                          f'size="{wx:.6g} 0.002 {wall / 2:.6g}" '
                          f'pos="{cx - bx + wx:.6g} {sign * (by - 0.002):.6g} '
                          f'{-drop + bz + wall / 2:.6g}" mass="{0.06 * m:.6g}" {colour} {smooth}/>'
                          for k, sign in enumerate((1, -1))))
        handle_mass = 0.6 * m  # the handle is the heavy part: the ladle balances near the hand
    else:
        bowl = (f'<geom name="spoon_bowl" type="ellipsoid" size="{bx} {by} {bz}" '
                f'pos="{hx + bx - 0.004:.6g} 0 {bz - hz:.6g}" mass="{0.4 * spoon.mass:.6g}" '
                f'{colour} {geom}/>')
        handle_mass = 0.6 * spoon.mass
    return ((rest_xml if rest else '') + f'<body name="spoon" pos="0.5 0 {h + hz}">'
            '<freejoint name="spoon_free"/>'
            f'<geom name="spoon_handle" type="box" size="{hx} {hy} {hz}" '
            f'mass="{handle_mass:.6g}" {colour} {geom}/>'
            f'{bowl}</body>')


def dish_xml(name: str, dish: DishGeometry) -> str:
    """Return a static round container (mocap body `name`, placed by the world at reset)."""
    r, h, t, n = dish.radius, dish.height, dish.wall, dish.segments
    half_len = (r + t) * np.tan(np.pi / n) + 0.001  # segments overlap a little: no gaps
    props = (f'rgba="{fmt(dish.rgba)}" friction="{dish.friction} 0.005 0.0001" contype="1" '
             f'conaffinity="3"')
    walls = ''.join(
        f'<geom name="{name}_wall_{k}" type="box" size="{t / 2} {half_len:.6g} {h / 2}" '
        f'pos="{(r + t / 2) * np.cos(a):.6g} {(r + t / 2) * np.sin(a):.6g} {h / 2}" '
        f'euler="0 0 {a:.6g}" {props}/>'
        for k, a in enumerate(2 * np.pi * np.arange(n) / n))
    if dish.floor > 0:
        inside = (f'<geom name="{name}_floor" type="cylinder" size="{r + t / 2} {dish.floor / 2}" '
                  f'pos="0 0 {dish.floor / 2}" rgba="{fmt(dish.inside_rgba)}" '
                  f'friction="{dish.friction} 0.005 0.0001" contype="1" conaffinity="3"/>')
    else:
        inside = (f'<geom name="{name}_inside" type="cylinder" size="{r} 0.0005" pos="0 0 0.0005" '
                  f'rgba="{fmt(dish.inside_rgba)}" contype="0" conaffinity="0"/>')
    return f'<body name="{name}" mocap="true" pos="0.5 0.3 0">{walls}{inside}</body>'


def grapes_xml(grapes: GrapeGeometry, name: str = 'grape') -> str:
    """Return free spheres '<name>_0', '<name>_1', ... (joints '<name>_<i>_free')."""
    g = grapes
    return ''.join(
        f'<body name="{name}_{i}" pos="{0.9 - 0.03 * i:.6g} 0.5 {g.radius}">'
        f'<freejoint name="{name}_{i}_free"/>'
        f'<geom name="{name}_{i}" type="sphere" size="{g.radius}" mass="{g.mass}" '
        f'rgba="{fmt(g.rgba)}" friction="{g.friction} 0.005 {g.rolling}" condim="{g.condim}" '
        f'contype="1" conaffinity="3"/></body>'
        for i in range(g.count))


def drawer_xml(dr: DrawerGeometry) -> str:
    """Return the cabinet (static mocap body 'cabinet') with its drawer on slide 'drawer_slide'."""
    w, d, h, t = dr.width, dr.depth, dr.height, dr.wall
    wood = 'rgba="0.62 0.5 0.38 1" contype="1" conaffinity="3"'
    lo, hi = dr.drawer_bottom, dr.drawer_bottom + dr.drawer_height
    panels = [  # name, half sizes, centre (cabinet frame)
        ('left', (d / 2, t / 2, h / 2), (d / 2, w / 2 - t / 2, h / 2)),
        ('right', (d / 2, t / 2, h / 2), (d / 2, -w / 2 + t / 2, h / 2)),
        ('back', (t / 2, w / 2, h / 2), (d - t / 2, 0, h / 2)),
        ('top', (d / 2, w / 2, t / 2), (d / 2, 0, h - t / 2)),
        ('shelf', (d / 2, w / 2, t / 2), (d / 2, 0, lo - t / 2)),
        ('below', (t / 2, w / 2, (lo - t) / 2), (t / 2, 0, (lo - t) / 2)),
        ('above', (t / 2, w / 2, (h - t - hi) / 2), (t / 2, 0, (hi + h - t) / 2)),
    ]
    cabinet = ''.join(f'<geom name="cabinet_{n}" type="box" size="{fmt(size)}" pos="{fmt(pos)}" '
                      f'{wood}/>' for n, size, pos in panels if min(size) > 0)
    iw = w / 2 - t - 0.002  # drawer half width
    dd = d - 2 * t - 0.004  # drawer depth
    dh = dr.drawer_height
    green = f'rgba="{fmt(dr.rgba)}" contype="1" conaffinity="3"'
    gold = (f'rgba="{fmt(dr.handle_rgba)}" contype="1" conaffinity="3" condim="4" '
            f'friction="1.0 0.01 0.0001"')
    hz, hl, s = dr.handle_z - lo, dr.handle_length / 2, dr.handle_standoff
    drawer = (
        f'<geom name="drawer_front" type="box" size="{t / 2} {iw} {dh / 2 - 0.001}" '
        f'pos="{t / 2} 0 {dh / 2}" {green}/>'
        f'<geom name="drawer_floor" type="box" size="{dd / 2} {iw} 0.004" '
        f'pos="{t + dd / 2} 0 0.004" {green}/>'
        f'<geom name="drawer_back" type="box" size="0.004 {iw} {dh / 3}" '
        f'pos="{t + dd - 0.004} 0 {dh / 3}" {green}/>'
        + ''.join(f'<geom name="drawer_side_{k}" type="box" size="{dd / 2} 0.004 {dh / 3}" '
                  f'pos="{t + dd / 2} {sign * (iw - 0.004)} {dh / 3}" {green}/>'
                  for k, sign in enumerate((1, -1)))
        + ''.join(f'<geom name="handle_post_{k}" type="cylinder" size="0.005" '
                  f'fromto="0 {sign * (hl - 0.01)} {hz} {-s} {sign * (hl - 0.01)} {hz}" '
                  f'{gold}/>' for k, sign in enumerate((1, -1)))
        + f'<geom name="handle" type="capsule" size="{dr.handle_radius}" '
        f'fromto="{-s} {-hl} {hz} {-s} {hl} {hz}" {gold}/>')
    return (f'<body name="cabinet" mocap="true" pos="0.5 0 0">{cabinet}'
            f'<body name="drawer" pos="0 0 {lo}">'
            f'<joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {dr.travel}" '
            f'damping="{dr.slide_damping}" frictionloss="{dr.slide_friction}" armature="0.01"/>'
            f'<inertial pos="{d / 2} 0 {dh / 3}" mass="{dr.drawer_mass}" '
            f'diaginertia="0.005 0.004 0.006"/>{drawer}</body></body>')


def cup_xml(cup: CupGeometry) -> str:
    """Return the cup: a free body 'cup', solid with a drawn opening, or hollow (cup.wall > 0)."""
    r, hh = cup.radius, cup.height / 2
    cup_inertia = (cup.mass * (3 * r * r + cup.height ** 2) / 12,) * 2 + (cup.mass * r * r / 2,)
    props = (f'rgba="{fmt(cup.rgba)}" friction="{cup.friction} 0.01 0.0001" condim="4" '
             'contype="1" conaffinity="3"')
    if cup.wall > 0:
        t, n, f = cup.wall, cup.segments, cup.floor
        # the walls stand on the floor (only the floor touches the table: fewer contacts) and
        # overlap a little: no gaps
        half_len = r * np.tan(np.pi / n) + 0.0005
        geoms = (f'<geom name="cup_floor" type="cylinder" size="{r} {f / 2}" '
                 f'pos="0 0 {f / 2 - hh:.6g}" {props}/>'
                 + ''.join(f'<geom name="cup_wall_{k}" type="box" '
                           f'size="{t / 2} {half_len:.6g} {hh - f / 2:.6g}" '
                           f'pos="{(r - t / 2) * np.cos(a):.6g} {(r - t / 2) * np.sin(a):.6g} '
                           f'{f / 2:.6g}" '
                           f'euler="0 0 {a:.6g}" {props}/>'
                           for k, a in enumerate(2 * np.pi * np.arange(n) / n)))
    else:
        geoms = (f'<geom name="cup" type="cylinder" size="{r} {hh}" {props}/>'
                 f'<geom name="cup_opening" type="cylinder" size="{0.85 * r} 0.0005" '
                 f'pos="0 0 {hh}" rgba="0.25 0.05 0.04 1" contype="0" conaffinity="0"/>')
    return (f'<body name="cup" pos="0.5 0 {hh}"><freejoint name="cup_free"/>'
            f'<inertial pos="0 0 0" mass="{cup.mass}" diaginertia="{fmt(cup_inertia)}"/>'
            f'{geoms}</body>')
