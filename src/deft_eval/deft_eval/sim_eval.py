"""
Grasp priors evaluated in the MuJoCo twin without ROS: perceive, predict, execute, fine-tune.

One `SimEvaluator` per task computes a grasp prior the way the graph does and executes it:

1. Perceive (`perceive`): reset the world to a placement (seed, split), render the RGB-D frame,
   segment it with the weight-free `depth` backend of perception/segment (DepthPlaneSegmenter
   with the parameters of config/perception.yaml), cut the square crop of the mask's box as the
   perception node does (crop_window + crop_resize) and back-project the mask to 3D points.
   The prompt is a point on the object (the projection of the middle of its grasp region), as
   an operator would click it: the salient object of the pour scene is the bowl, not the cup.
   The arm waits outside the camera's view (human_labels.AWAY) while the scene is perceived, as
   in the human-label images the model is trained on; the arm then starts its motion from there.
2. Predict (`prior`): `affordance` = the model's f(crop, task text) turned into the base-frame
   prior by deft_affordance.lifting.model_grasp, the function the affordance node calls (mean
   contact lifted onto the object's nearest point in pixels, wrist = camera rotation * predicted
   quaternion, MANO pose retargeted with the node's retargeting_config); `heuristic` = the
   paper's "real-world only" prior (heuristic_prior: the box centre, a random yaw seeded by the
   placement seed, the half-closed hand); `oracle` = the task's noise-free human label (the
   contact, wrist and MANO pose the label generator writes) through the very same lifting and
   retargeting as the model's prediction: the ceiling of a perfect model, which tells learning
   errors from errors of the path after the model.
3. Execute (`execute`): the wrist goes to the prior's contact point with its orientation (the
   arm's convention: the contact point is the wrist target), the hand closes to the prior's
   joint targets (mapped by name onto the world's hand), then the task's demonstrated tau (and
   its wrist turns, when the task has them) scaled by tau_scale: deft_sim.tasks.run_scripted.
   The reward and success are the world's task_reward.
4. Fine-tune (`fine_tune`): DEFT's Algorithm 1 in-process: xi from the prior
   (deft_cem.grasp_params.ParameterSpace), CEM from deft_cem.fine_tune.build_optimizer with the
   episode node's initial std (config/episode.yaml), N episodes on the same placement (each one
   resets it), then the final mean of D executed once: its success is the method's success.

Settings come from the graph's parameter files (`graph_parameters`: common.yaml,
<node>.yaml, profile.sim.yaml), so this evaluation and the sim graph cannot drift apart.
"""

from dataclasses import dataclass, field, replace
import inspect
import os
from pathlib import Path
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from deft_common.rotations import Transform

METHODS = ('affordance', 'heuristic', 'oracle')
SPLITS = ('train', 'test')
EVAL_SEED = 500_000  # first placement seed of evaluations: far from the label seeds 0, 1, ...
AWAY = (0.1, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0)  # the arm out of the camera's view (human_labels)


def config_dir() -> Path:
    """Return deft_bringup's config directory: the source tree's, else the installed one."""
    source = Path(__file__).resolve().parents[2] / 'deft_bringup' / 'config'
    if (source / 'perception.yaml').is_file():
        return source
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('deft_bringup')) / 'config'


def graph_parameters(node: str, profile: str = 'sim',
                     directory: Optional[Path] = None) -> Dict[str, object]:
    """
    Return the parameters a node of the graph starts with in a profile.

    The files are read as the graph reads them (common.yaml, <node>.yaml, profile.<profile>.yaml,
    later ones win), keeping the sections `/**` and `/**/<node>`; ValueError if one is missing.
    """
    folder = Path(directory) if directory is not None else config_dir()
    values: Dict[str, object] = {}
    for name in ('common.yaml', f'{node}.yaml', f'profile.{profile}.yaml'):
        path = folder / name
        if not path.is_file():
            raise ValueError(f'parameter file {path} not found')
        data = yaml.safe_load(path.read_text()) or {}
        for key in ('/**', f'/**/{node}'):
            values.update((data.get(key) or {}).get('ros__parameters') or {})
    return values


@dataclass(frozen=True)
class SimEvalSettings:
    """The graph's settings that shape a prior and its execution (see `from_graph`)."""

    width: int = 640
    height: int = 480
    focal: float = 554.3
    camera_to_base: Tuple[float, ...] = (0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0)
    hand_config: str = ''
    crop_size: int = 224
    crop_margin: float = 0.15
    segmentation: Dict[str, float] = field(default_factory=dict)  # DepthPlaneSegmenter kwargs
    max_lift_distance_px: float = 25.0
    retargeting_config: str = 'leap_16dof_retargeting.yaml'
    heuristic_pose_name: str = 'half'
    initial_std: Tuple[float, ...] = (0.02, 0.2, 0.1, 0.1)  # contact, wrist, hand, tau std
    heuristic_std: Tuple[float, ...] = (0.4, 0.3)  # wrist, hand std of a run from `heuristic`
    perceive_pose: Tuple[float, ...] = AWAY

    @staticmethod
    def from_graph(directory: Optional[Path] = None, **changes) -> 'SimEvalSettings':
        """Read the sim profile's parameter files (sim, perception, affordance, episode)."""
        sim = graph_parameters('sim', directory=directory)
        per = graph_parameters('perception', directory=directory)
        aff = graph_parameters('affordance', directory=directory)
        epi = graph_parameters('episode', directory=directory)
        if per.get('backend') != 'depth':
            raise ValueError(f"the sim profile's perception backend is {per.get('backend')!r}; "
                             'this evaluation reproduces the weight-free depth backend only')
        if abs(float(sim['fx']) - float(sim['fy'])) > 1e-9:
            raise ValueError('the simulated camera needs fx == fy')
        settings = SimEvalSettings(
            width=int(sim['width']), height=int(sim['height']), focal=float(sim['fx']),
            camera_to_base=tuple(float(v) for v in aff['camera_to_base']),
            hand_config=str(aff.get('hand_config', '')),
            crop_size=int(per['crop_size']), crop_margin=float(per['crop_margin']),
            segmentation=dict(min_height=float(per['min_height']),
                              max_height=float(per['max_height']),
                              min_area=int(per['min_area']),
                              iterations=int(per['ransac_iterations']),
                              inlier_distance=float(per['plane_inlier_distance']),
                              seed=int(per['seed'])),
            max_lift_distance_px=float(aff['max_lift_distance_px']),
            retargeting_config=str(aff['retargeting_config']),
            heuristic_pose_name=str(aff['heuristic_pose_name']),
            initial_std=tuple(float(epi[k]) for k in ('contact_std', 'wrist_std', 'hand_std',
                                                      'tau_std')),
            heuristic_std=(float(epi['heuristic_wrist_std']), float(epi['heuristic_hand_std'])))
        return replace(settings, **changes)

    def camera(self):
        """Return the simulated camera (MuJoCo: square pixels, centred principal point)."""
        from deft_sim.kinematic_world import PinholeCamera
        return PinholeCamera(self.width, self.height, self.focal, self.focal,
                             (self.width - 1) / 2.0, (self.height - 1) / 2.0)


@dataclass
class Scene:
    """What perception/segment hands the affordance node, plus the frame it came from."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    window: Tuple[int, int, int]   # the crop's square window in the image: x0, y0, side
    crop: np.ndarray               # crop_size x crop_size RGB
    points: np.ndarray             # (N, 3) the mask's 3D points, camera optical frame
    prompt: str


@dataclass
class Prior:
    """A grasp prior in the base frame (what affordance/predict answers)."""

    method: str
    contact_point: np.ndarray
    wrist_orientation: np.ndarray
    hand_joint_names: List[str]
    hand_joint_positions: np.ndarray
    pixels: Optional[np.ndarray] = None  # the model's contacts in the image (u, v pairs)


@dataclass
class LabelPrediction:
    """A prediction made of a label (method `oracle`): what model_grasp reads of one."""

    contact_points: np.ndarray    # (K, 2) crop px
    wrist_quaternion: np.ndarray  # camera optical frame, x y z w
    hand_pose: np.ndarray         # MANO 45

    @property
    def mean_contact(self) -> np.ndarray:
        """Return the mean contact (u, v)."""
        return self.contact_points.mean(axis=0)


@dataclass
class Outcome:
    """The result of a prior executed alone, or of a fine-tuning run from it."""

    reward: float
    success: bool
    error: str = ''  # why there was no prior (then reward 0, no success)
    rewards: List[float] = field(default_factory=list)  # fine_tune: the N episodes' rewards


def resolve_retargeting(path: str) -> str:
    """Return a retargeting YAML path: a bare file name is in deft_hand_driver's config."""
    if path and '/' not in path:
        from deft_hand_driver.hand_config import default_config_path
        try:
            folder = default_config_path().parent
        except (LookupError, OSError):  # not installed: the source tree
            import deft_hand_driver
            folder = Path(deft_hand_driver.__file__).resolve().parents[1] / 'config'
        return str(folder / path)
    return path


def load_torch_before_gl() -> None:
    """
    Import torch's LLVM-based compiler parts (triton, via torch._dynamo) if torch is in use.

    Loading libtriton after MuJoCo's first OpenGL context (Mesa llvmpipe, which links its own
    LLVM) crashes the process with a segmentation fault; loaded first, both work. torchvision's
    models import torch._dynamo, so building a model after rendering would crash: call this (or
    import torch._dynamo) before the first world renders in a process that uses torch.
    """
    if 'torch' in sys.modules:
        import torch._dynamo  # noqa: F401


def _tau_turns_supported() -> bool:
    from deft_sim.tasks import run_scripted
    return 'tau_rotations' in inspect.signature(run_scripted).parameters


class SimEvaluator:
    """Priors of one task in one MuJoCo world: perceive, predict, execute, fine-tune."""

    def __init__(self, task: str, settings: Optional[SimEvalSettings] = None, model=None,
                 hand=None, world=None):
        """
        Build the world of `task` (or use `world`, a MujocoWorld of that task).

        `model` (an AffordanceModel) is needed for the `affordance` prior; `hand` is the hand
        config (default: settings.hand_config).
        """
        os.environ.setdefault('MUJOCO_GL', 'egl')
        load_torch_before_gl()
        from deft_hand_driver.retargeting import build_retargeter
        from deft_hand_driver.retargeting_config import load_retargeting_config
        from deft_perception.geometry import CameraModel
        from deft_perception.segmentation import DepthPlaneSegmenter
        from deft_sim.human_labels import load_hand
        from deft_sim.mujoco_world import MujocoSettings, MujocoWorld
        from deft_sim.tasks import task_spec

        self.s = settings or SimEvalSettings.from_graph()
        self.spec = task_spec(task)
        self.hand = hand if hand is not None else load_hand(self.s.hand_config)
        self.model = model
        camera = self.s.camera()
        self.camera_model = CameraModel(camera.fx, camera.fy, camera.cx, camera.cy,
                                        camera.width, camera.height)
        self.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
        self.camera_to_base = Transform.from_list(self.s.camera_to_base)
        self.segmenter = DepthPlaneSegmenter(**self.s.segmentation)
        rt_hand, rt_config = load_retargeting_config(
            resolve_retargeting(self.s.retargeting_config))
        self.retargeter = build_retargeter(rt_hand, rt_config)
        self.half_pose = self.hand.pose(self.s.heuristic_pose_name)
        self.world = world if world is not None else MujocoWorld(
            camera, self.camera_to_base, self.hand,
            MujocoSettings(task=task, home_pose=tuple(self.s.perceive_pose)))
        self.turns = _tau_turns_supported()

    def close(self) -> None:
        """Free the world's renderer."""
        self.world.close()

    def __enter__(self) -> 'SimEvaluator':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- perceive ----------------------------------------------------------------------
    def prompt(self) -> str:
        """Return a point prompt on the object: the projected middle of its grasp region."""
        try:
            a, b = self.world.grasp_region()
            target = (np.asarray(a) + np.asarray(b)) / 2.0
        except (AttributeError, KeyError):
            target = self.world.object_pose()[0]
        optical = self.camera_to_base.inverse().apply(np.asarray(target)[None])
        u, v = self.camera_model.project(optical)[0]
        return f'point: {u:.1f}, {v:.1f}'

    def perceive(self, seed: Optional[int] = None, split: str = 'train') -> Scene:
        """Reset to a placement (unless seed is None: the world as it is), render, segment."""
        if seed is not None:
            self.world.reset(seed, split)
        return perceive(self.world, self.segmenter, self.camera_model, self.s.crop_size,
                        self.s.crop_margin, self.prompt())

    # --- predict -----------------------------------------------------------------------
    def prior(self, method: str, scene: Scene, seed: int) -> Prior:
        """Compute the prior of `method` from a perceived scene; ValueError if there is none."""
        if method == 'heuristic':
            from deft_affordance.heuristic_prior import heuristic_prior
            points = self.camera_to_base.apply(scene.points)
            g = heuristic_prior(points, self.hand.joint_names, self.half_pose,
                                np.random.default_rng(seed))
            return Prior(method, g.contact_point, g.wrist_orientation, g.hand_joint_names,
                         g.hand_joint_positions)
        if method not in METHODS:
            raise ValueError(f'method {method!r} is not one of {", ".join(METHODS)}')
        from deft_affordance.lifting import model_grasp
        if method == 'oracle':
            pred = self.label_prediction(scene)
        elif self.model is None:
            raise ValueError('the affordance prior needs a model')
        else:
            pred = self.model.predict(scene.crop, self.spec.text)
        g = model_grasp(pred, scene.crop.shape[1], scene.window, scene.points, self.k,
                        self.camera_to_base, self.retargeter, self.hand.joint_names,
                        self.s.max_lift_distance_px)
        return Prior(method, g.contact_point, g.wrist_orientation, g.hand_joint_names,
                     g.hand_joint_positions, g.pixels)

    def label_prediction(self, scene: Scene) -> 'LabelPrediction':
        """
        Return the noise-free human label of the scene's placement as a model prediction.

        The world must still be at the perceived placement. Contacts: the task's contact points
        projected into the crop; wrist: its nominal wrist in the camera optical frame; hand: the
        MANO pose of its named hand pose (deft_sim.human_labels, as the label generator writes).
        """
        from deft_common import rotations
        from deft_sim.human_labels import WRIST_TO_MANO, mano_pose

        optical = self.camera_to_base.inverse().apply(self.spec.contacts_in(self.world))
        x0, y0, side = scene.window
        size = scene.crop.shape[1]
        pixels = (self.camera_model.project(optical) + 0.5 - [x0, y0]) * size / side - 0.5
        _, wrist = self.spec.grasp_in(self.world)
        q = rotations.multiply(rotations.multiply(
            rotations.conjugate(self.camera_to_base.rotation), wrist), WRIST_TO_MANO)
        return LabelPrediction(pixels, rotations.normalize(q), mano_pose(self.spec.hand_pose))

    # --- execute -----------------------------------------------------------------------
    def execute(self, seed: int, split: str, contact_point, wrist_orientation,
                joint_names: Sequence[str], joint_positions: Sequence[float],
                tau_scale: float = 1.0) -> Tuple[float, bool]:
        """Reset to the placement, run the grasp + the task's tau; return (reward, success)."""
        from deft_sim.tasks import run_scripted
        targets, _ = self.hand.resolve(list(joint_names), [float(v) for v in joint_positions],
                                       base=self.hand.pose('open'))
        self.world.reset(seed, split)
        tau = self.spec.waypoints * float(tau_scale)
        kwargs = {}
        turns = getattr(self.spec, 'rotations', None)
        if self.turns and turns is not None:
            kwargs['tau_rotations'] = np.asarray(turns, dtype=float) * float(tau_scale)
        reward, success = run_scripted(self.world, np.asarray(contact_point, dtype=float),
                                       np.asarray(wrist_orientation, dtype=float), targets, tau,
                                       **kwargs)
        return float(reward), bool(success)

    def execute_prior(self, prior: Prior, seed: int, split: str) -> Tuple[float, bool]:
        """Execute a prior as it is (eps = 0, tau_scale 1)."""
        return self.execute(seed, split, prior.contact_point, prior.wrist_orientation,
                            prior.hand_joint_names, prior.hand_joint_positions)

    def nominal(self, seed: int, split: str) -> Tuple[float, bool]:
        """Execute the task's human grasp (TaskSpec.grasp, its named hand pose) at a placement."""
        self.world.reset(seed, split)
        position, q = self.spec.grasp_in(self.world)
        pose = self.hand.pose(self.spec.hand_pose)
        return self.execute(seed, split, position, q, self.hand.joint_names, pose)

    # --- methods -----------------------------------------------------------------------
    def prior_only(self, method: str, seed: int, split: str) -> Tuple[Optional[Prior], Outcome]:
        """Perceive, predict and execute the prior once; a missing prior is a failed episode."""
        scene = self.perceive(seed, split)
        try:
            prior = self.prior(method, scene, seed)
        except ValueError as exc:
            return None, Outcome(0.0, False, error=str(exc))
        reward, success = self.execute_prior(prior, seed, split)
        return prior, Outcome(reward, success)

    def fine_tune(self, prior: Optional[Prior], seed: int, split: str, episodes: int = 12,
                  warmup: int = 4, elites: int = 3, cem_seed: int = 0) -> Outcome:
        """
        Run DEFT's CEM from a prior at one placement; return the final mean's outcome.

        N = `episodes` draws eps ~ D (the first M = `warmup` from N(0, initial std^2)), each
        executed from a reset placement and told its reward; then xi + mean(D) is executed once.
        """
        from deft_cem.fine_tune import build_optimizer
        from deft_cem.grasp_params import ParameterSpace
        from deft_common.runs import RunSettings

        if prior is None:
            return Outcome(0.0, False, error='no prior to fine-tune')
        space = ParameterSpace(self.hand.joint_names, self.hand.lower, self.hand.upper)
        xi = space.xi(prior.contact_point, prior.wrist_orientation, prior.hand_joint_names,
                      prior.hand_joint_positions)
        contact, wrist, hand, tau = self.s.initial_std
        if prior.method == 'heuristic':  # as the episode node: it explores wrist and hand wider
            wrist, hand = self.s.heuristic_std
        run = RunSettings(task=self.spec.text, object_prompt='', episodes=episodes,
                          warmup_episodes=warmup, elites=elites,
                          initial_std=space.default_std(contact, wrist, hand, tau).tolist(),
                          reward_source='sim', optimizer='cem', prior=prior.method,
                          seed=int(cem_seed), parameter_names=space.names)
        optimizer = build_optimizer(run)
        rewards = []
        for _ in range(episodes):
            eps = optimizer.ask()
            reward, _ = self.run_command(space.command(xi, eps), seed, split)
            optimizer.tell(eps, reward)
            rewards.append(reward)
        reward, success = self.run_command(space.command(xi, optimizer.mean), seed, split)
        return Outcome(reward, success, rewards=rewards)

    def run_command(self, command, seed: int, split: str) -> Tuple[float, bool]:
        """Execute a GraspCommand (xi + eps) at a placement."""
        return self.execute(seed, split, command.contact_point, command.wrist_orientation,
                            command.hand_joint_names, command.hand_joint_positions,
                            command.tau_scale)


def perceive(world, segmenter, camera_model, crop_size: int, margin: float,
             prompt: str) -> Scene:
    """
    Render the world as it is and do what perception/segment does with the frame.

    SegmentationError (a ValueError) when nothing is found for the prompt.
    """
    from deft_perception.geometry import crop_resize, crop_window, mask_box
    from deft_perception.prompts import parse_prompt
    from deft_perception.segmentation import SegmentationError

    rgb, depth = world.render()
    h, w = depth.shape
    mask = segmenter.segment(rgb, depth, camera_model, parse_prompt(prompt, w, h))
    points, _ = camera_model.backproject(mask, depth)
    if len(points) == 0:
        raise SegmentationError('the object has no valid depth')
    window = crop_window(mask_box(mask), margin, w, h)
    return Scene(rgb, depth, mask, window, crop_resize(rgb, window, crop_size), points, prompt)


def eval_seed(trial: int, offset: int = 0) -> int:
    """Return the placement seed of an evaluation trial (disjoint from the label seeds)."""
    return EVAL_SEED + offset + trial
