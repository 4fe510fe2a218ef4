"""
Per task: the demonstration and the cheats a lazy policy would find, which success must tell apart.

A check is one scripted episode (tasks.run_scripted) at a placement: the task's demonstration,
the nominal human grasp with its demonstrated tau, or that episode changed the way a cheat
changes it: the grasp moved (along the object's own axes or base axes) or turned (about the
wrist's own axes), the hand closed less, or another post-grasp trajectory. Every cheat must fail
on most placements of both splits while the demonstration succeeds; test_tasks.py asserts it
and `bench_sim` reports the rates (`twin_task_checks`). Some changed grasps are listed because
they still succeed, and the benchmark shows it (KNOWN_TO_PASS): they hold the object the way a
person might (the cup by its side), or the hand's loose grip of a thin handle tolerates them.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from deft_common import rotations
from deft_sim.tasks import TASK_SPECS, TaskSpec, run_scripted

Tau = Tuple[np.ndarray, np.ndarray]  # waypoints (N, 3) and their rotation vectors (N, 3)


@dataclass(frozen=True)
class Cheat:
    """One way to fake a task: the changes to its demonstrated episode (None: unchanged)."""

    name: str
    what: str  # what the lazy policy does, in a few words
    offset: Optional[Tuple[str, float, float, float]] = None  # ('object'|'base'|'wrist', dx..) m
    turn: Optional[Tuple[float, float, float]] = None  # rotation vector, wrist axes (rad)
    closure: Optional[float] = None  # hand closure 0 (open) .. 1 instead of the demo's
    tau: Optional[Callable[[TaskSpec], Tau]] = None  # another post-grasp trajectory
    grasp_of: Optional[str] = None  # another task's nominal grasp (its TASK_SPECS name)
    at: Optional[Callable[[np.ndarray], np.ndarray]] = None  # wrist position from the object's


def run_check(world, spec: TaskSpec, seed: int, split: str,
              cheat: Optional[Cheat] = None, closure: float = 1.0) -> Tuple[float, bool]:
    """Reset to a placement and run the demonstration (cheat None) or a cheat; (reward, ok)."""
    world.reset(seed, split)
    grasp = TASK_SPECS[cheat.grasp_of] if cheat is not None and cheat.grasp_of else spec
    position, q = grasp.grasp_in(world)
    waypoints, turns = spec.waypoints, spec.rotations
    if cheat is not None:
        if cheat.at is not None:
            position = np.asarray(cheat.at(world.object_pose()[0]), dtype=float)
        if cheat.offset is not None:
            frame, *offset = cheat.offset
            axes = {'object': world.object_pose()[1], 'wrist': q}.get(frame)
            position = position + (np.asarray(offset, dtype=float) if axes is None
                                   else rotations.rotate(axes, offset))
        if cheat.turn is not None:
            q = rotations.multiply(q, rotations.from_rotvec(cheat.turn))
        if cheat.closure is not None:
            closure = cheat.closure
        if cheat.tau is not None:
            waypoints, turns = cheat.tau(spec)
    return run_scripted(world, position, q, closure, waypoints, tau_rotations=turns)


def _without_turns(spec: TaskSpec) -> Tau:
    """Return the demonstrated waypoints with the wrist kept at its grasp orientation."""
    return spec.waypoints, np.zeros_like(spec.waypoints)


def _waypoints(*rows) -> Callable[[TaskSpec], Tau]:
    """Return a tau of these waypoints (m, base axes) without turns."""
    return lambda spec: (np.asarray(rows, dtype=float), np.zeros((len(rows), 3)))


def _in_place(spec: TaskSpec) -> Tau:
    """Return the demonstrated tau without its horizontal moves (lift and turns only)."""
    waypoints = spec.waypoints.copy()
    waypoints[:, :2] = 0.0
    return waypoints, spec.rotations


def stir_cheat_taus(spec: TaskSpec) -> Dict[str, np.ndarray]:
    """Return stir_spoon's cheat taus (base axes, from the grasp): none winds a full turn."""
    base = spec.waypoints
    r, z = np.ptp(base[2:-1, 0]) / 2.0, base[2, 2]  # the demo's circle: from centre + (r, 0)
    c = base[2, :2] - [r, 0.0]

    def arc(a0, a1, n, lift=0.0, shift=(0.0, 0.0)):
        return [(c[0] + shift[0] + r * np.cos(a), c[1] + shift[1] + r * np.sin(a), z + lift)
                for a in np.linspace(a0, a1, n + 1)]
    pre, out = [tuple(base[0]), tuple(base[1])], [tuple(base[-1])]
    beside = (0.0, 0.14)
    taus = {
        'straight_stroke': [tuple(base[0]), (c[0] - r, c[1], base[0, 2]), (c[0] - r, c[1], z),
                            (c[0] + r, c[1], z)] + out,
        'wiggle_60deg': pre + arc(0, np.pi / 3, 4) + arc(np.pi / 3, -np.pi / 3, 8)
        + arc(-np.pi / 3, 0, 4) + out,
        'half_circle': pre + arc(0, np.pi, 8) + out,
        'above_the_rim': pre + arc(0, 2 * np.pi, 16, lift=0.05) + out,
        'beside_the_pot': pre + [(c[0] + r, c[1] + beside[1], base[1, 2])]
        + arc(0, 2 * np.pi, 16, shift=beside) + out,
        'no_circle': pre + [tuple(base[2])] * 17 + out,
    }
    return {k: np.asarray(v, dtype=float) for k, v in taus.items()}


def _stir(name: str) -> Callable[[TaskSpec], Tau]:
    """Return the stir cheat's tau (stir_cheat_taus), no wrist turns."""
    def tau(spec: TaskSpec) -> Tau:
        waypoints = stir_cheat_taus(spec)[name]
        return waypoints, np.zeros_like(waypoints)
    return tau


def _pick_cheats(obj: str) -> Tuple[Cheat, ...]:
    """Return the cheats of a pick task (moves in the wrist frame: x along the fingers)."""
    return (
        Cheat('push', f'slide the {obj} along the table with the closed hand beside it',
              at=lambda c: np.array([c[0], c[1] + 0.09, max(c[2], 0.03)]),
              tau=_waypoints(*[[0.0, -0.25, 0.0]] * 4)),
        Cheat('lift_only', 'lift 15 cm and hold there (no carry)',
              tau=_waypoints(*[[0.0, 0.0, 0.15]] * 4)),
        Cheat('open_hand', f'reach the {obj} and move with the hand open', closure=0.0),
        Cheat('half_closed', 'the hand half closed', closure=0.5),
        Cheat('moved_5cm_along_the_fingers', 'the grasp 5 cm towards the fingertips',
              offset=('wrist', 0.05, 0.0, 0.0)),
        Cheat('moved_5cm_across_the_fingers', 'the grasp 5 cm across the fingers',
              offset=('wrist', 0.0, 0.05, 0.0)),
        Cheat('moved_5cm_back', 'the grasp 5 cm back along the fingers',
              offset=('wrist', -0.05, 0.0, 0.0)),
        Cheat('turned_fingers_up', 'the wrist turned a quarter, fingers up',
              turn=(0.0, np.pi / 2, 0.0)),
    )


def _scoop_tau(change: Callable[[np.ndarray, np.ndarray], Tau]) -> Callable[[TaskSpec], Tau]:
    """Return the scoop's tau changed by `change(waypoints, rotations)`."""
    return lambda spec: change(spec.waypoints, spec.rotations)


CHEATS: Dict[str, Tuple[Cheat, ...]] = {
    'pick_cup': _pick_cheats('cup') + (
        Cheat('turned_palm_sideways', 'the wrist turned a quarter, palm sideways (a side grip)',
              turn=(np.pi / 2, 0.0, 0.0)),
        Cheat('roll', 'knock the cup over from the side and roll it on',
              at=lambda c: c + np.array([0.0, 0.09, 0.05]),
              tau=_waypoints([0, -0.12, 0], [0, -0.12, -0.05], [0, -0.3, -0.05],
                             [0, -0.3, 0.1])),
    ),
    'pour_cup': (
        Cheat('palm_up', 'the wrist turned palm up', turn=(np.pi, 0.0, 0.0)),
        Cheat('contact_6cm_towards_the_fingertips', 'only the fingertips reach the cup',
              offset=('base', 0.0, 0.06, 0.0)),
        Cheat('contact_6cm_towards_the_palm', 'the cup deep in the fingers',
              offset=('base', 0.0, -0.06, 0.0)),
        Cheat('tilt_in_place', 'lift and tilt without carrying over the bowl', tau=_in_place),
        Cheat('palm_down_over_the_mouth', "pick_cup's top grasp (it covers the mouth), the "
              "pour's tau", grasp_of='pick_cup'),
        Cheat('lift_only', 'lift the cup 15 cm', tau=_waypoints([0.0, 0.0, 0.15])),
        Cheat('no_tilt', 'lift and carry over the bowl without tilting', tau=_without_turns),
        Cheat('open_hand', 'reach the cup and move with the hand open', closure=0.0),
    ),
    'pick_spoon': _pick_cheats('spoon') + (
        Cheat('fingers_along_the_handle', 'the wrist turned a quarter about its axis',
              turn=(0.0, 0.0, np.pi / 2)),
        Cheat('turned_palm_sideways', 'the wrist turned a quarter, palm sideways',
              turn=(np.pi / 2, 0.0, 0.0)),
        Cheat('turned_about_the_approach', 'the wrist turned a quarter about its axis',
              turn=(0.0, 0.0, np.pi / 2)),
        Cheat('contact_7cm_towards_the_end', 'the grasp 7 cm towards the handle end',
              offset=('object', -0.07, 0.0, 0.0)),
        Cheat('contact_7cm_towards_the_bowl', 'the grasp 7 cm towards the bowl',
              offset=('object', 0.07, 0.0, 0.0)),
    ),
    'open_drawer': (
        Cheat('fingers_along_the_bar', 'the wrist turned a quarter about its axis',
              turn=(0.0, 0.0, np.pi / 2)),
        Cheat('palm_away', 'the wrist turned palm away from the handle',
              turn=(np.pi, 0.0, 0.0)),
        Cheat('contact_7cm_high', 'the grasp 7 cm above the handle',
              offset=('object', 0.0, 0.0, 0.07)),
        Cheat('contact_11cm_low', 'the grasp 11 cm below the handle',
              offset=('object', 0.0, 0.0, -0.11)),
        Cheat('hand_half_closed', 'pull with the hand half closed', closure=0.5),
        Cheat('open_hand', 'pull with the hand open (a hook of straight fingers)', closure=0.0),
        Cheat('push', 'push the wrist 5 cm into the cabinet',
              tau=_waypoints([0.05, 0.0, 0.0], [0.05, 0.0, 0.0])),
        Cheat('front_6cm_below_the_handle', 'grasp the drawer front 6 cm below the handle',
              offset=('object', 0.0, 0.0, -0.06)),
    ),
    'scoop_grape': (
        Cheat('lift_only', 'lift the spoon 10 cm', tau=_waypoints([0.0, 0.0, 0.10])),
        Cheat('push_only', 'push the tray through the grapes, no lift',
              tau=_scoop_tau(lambda w, r: (w[:1], r[:1]))),
        Cheat('push_and_lift_level', 'push, then lift without turning the tip up',
              tau=_scoop_tau(lambda w, r: (np.array([w[0], w[0] + [0.0, 0.0, 0.10]]),
                                           np.zeros((2, 3))))),
        Cheat('tip_down', 'the demonstrated path with the tip turned down',
              tau=_scoop_tau(lambda w, r: (w, -r))),
        Cheat('no_push', 'turn the tip up and lift where the spoon lies',
              tau=_scoop_tau(lambda w, r: (w - w[0], r))),
        Cheat('open_hand', 'the demonstration with the hand open', closure=0.0),
        Cheat('no_turn', 'the demonstrated path with the tip kept level', tau=_without_turns),
        Cheat('turned_fingers_up', 'the wrist turned a quarter, fingers up',
              turn=(0.0, np.pi / 2, 0.0)),
        Cheat('palm_up', 'the wrist turned palm up', turn=(np.pi, 0.0, 0.0)),
        Cheat('contact_7cm_towards_the_end', 'the grasp 7 cm towards the handle end',
              offset=('object', -0.07, 0.0, 0.0)),
        Cheat('hand_half_closed', 'lift with the hand half closed', closure=0.5),
    ),
    'stir_spoon': (
        Cheat('palm_up', 'the wrist turned palm up', turn=(np.pi, 0.0, 0.0)),
        Cheat('contact_7cm_towards_the_end', 'the grasp 7 cm towards the handle end',
              offset=('object', -0.07, 0.0, 0.0)),
        Cheat('straight_stroke', 'one straight stroke through the pot',
              tau=_stir('straight_stroke')),
        Cheat('wiggle_60deg', 'the tip wiggled +-60 deg about the pot', tau=_stir('wiggle_60deg')),
        Cheat('half_circle', 'half a circle', tau=_stir('half_circle')),
        Cheat('above_the_rim', 'the circle 5 cm above the rim', tau=_stir('above_the_rim')),
        Cheat('beside_the_pot', 'the circle 14 cm beside the pot', tau=_stir('beside_the_pot')),
        Cheat('no_circle', 'the bowl lowered into the pot and held still', tau=_stir('no_circle')),
        Cheat('lift_only', 'lift the spoon 10 cm', tau=_waypoints([0.0, 0.0, 0.10])),
        Cheat('open_hand', 'the demonstration with the hand open', closure=0.0),
    ),
}


# (task, cheat): variants measured to succeed on many configurations, reported all the same:
# changed grasps that still hold, and the scoop without its tip-up turn (it still pushes the
# tray under the grapes, which is the scoop; with the object instances it keeps a grape on about
# half to most configurations: the turn is not what the twin's check needs)
KNOWN_TO_PASS = {('pick_cup', 'turned_palm_sideways'), ('pick_spoon', 'moved_5cm_back'),
                 ('scoop_grape', 'turned_fingers_up'), ('scoop_grape', 'no_turn'),
                 ('pour_cup', 'contact_6cm_towards_the_palm')}


def cheat(task: str, name: str) -> Cheat:
    """Return a task's cheat by name; KeyError naming the known ones otherwise."""
    for c in CHEATS[task]:
        if c.name == name:
            return c
    raise KeyError(f'{task} has no cheat {name!r}; known: '
                   f'{", ".join(c.name for c in CHEATS[task])}')
