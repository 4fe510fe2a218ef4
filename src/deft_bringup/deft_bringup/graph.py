"""
The one description of the DEFT node graph.

Read by the `launch_ros` files (launch/*.launch.py) on a robot with ROS 2 installed, and by the
launch-free runner (`deft_run`, `make demo`, the integration tests) where `launch` is not
installable, so both start the same nodes with the same names, parameter files and remappings.

A node's parameters come from, in order (later files win): config/common.yaml (values several
nodes share), config/<node>.yaml, config/profile.<profile>.yaml, then the user's params_file and
overrides.
"""

from dataclasses import dataclass, field
import hashlib
import json
import os
from pathlib import Path
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

DEFAULT_NAMESPACE = '/deft'


@dataclass(frozen=True)
class NodeSpec:
    """A node of the graph: what to start, in which profiles, and whether it reads the camera."""

    name: str
    package: str
    executable: str
    profiles: Tuple[str, ...]
    # Subscribes to camera/... topics: on the robot these are remapped to the RGB-D driver's.
    camera_input: bool = False
    # Started again when it exits (deft_run and the launch files); not the one-shot bag player.
    respawn: bool = True


@dataclass(frozen=True)
class Argument:
    """A launch argument; the runner offers the same ones as command-line options."""

    name: str
    default: str
    description: str


NODES = (
    NodeSpec('sim', 'deft_sim', 'sim_node', ('sim',)),
    NodeSpec('bag_player', 'deft_replay', 'bag_player', ('replay',), respawn=False),
    NodeSpec('perception', 'deft_perception', 'perception_node', ('sim', 'robot', 'replay'),
             camera_input=True),
    NodeSpec('affordance', 'deft_affordance', 'affordance_node', ('sim', 'robot', 'replay'),
             camera_input=True),
    NodeSpec('hand_driver', 'deft_hand_driver', 'hand_driver_node', ('sim', 'robot')),
    NodeSpec('arm', 'deft_arm', 'arm_node', ('sim', 'robot')),
    NodeSpec('episode', 'deft_cem', 'episode_node', ('sim', 'robot'), camera_input=True),
)
PROFILES = ('sim', 'robot', 'replay')
# A node that exits is started again after RESPAWN_DELAY s, at most RESPAWN_MAX_RETRIES times in
# a graph's life (deft_run's --respawn_delay / --respawn_max_retries; launch_ros's respawn_*).
RESPAWN_DELAY = 2.0
RESPAWN_MAX_RETRIES = 5

ARGUMENTS = (
    Argument('namespace', DEFAULT_NAMESPACE, 'Namespace of every node of the graph.'),
    Argument('params_file', '', 'Extra parameters YAML applied after the shipped ones.'),
    Argument('hand_config', '', 'Hand config YAML (empty: the LEAP-class 16-DOF hand).'),
    Argument('reward_source', '', 'Default reward source of the episode node '
             '(operator | sim; empty: the profile default).'),
    Argument('camera_namespace', '/camera/camera',
             'Robot only: namespace of the RGB-D driver topics remapped to the camera inputs.'),
    Argument('log_level', 'info', 'Log level of every node (debug, info, warn, error).'),
    Argument('affordance_checkpoint', '', 'Affordance model checkpoint (deft_train_affordance); '
             'given: the affordance node runs backend model with it.'),
    Argument('planning_group', '', 'Robot only: MoveIt planning group of the arm (empty: '
             "arm.yaml's moveit_planning_group)."),
    Argument('moveit_config', '', 'Robot only: parameter YAML with the MoveIt configuration '
             '(robot_description, SRDF, kinematics, pipelines, controllers).'),
    Argument('moveit_config_package', '', 'Robot only: your MoveIt config package (made by the '
             'MoveIt Setup Assistant); its configuration is built with MoveItConfigsBuilder.'),
    Argument('robot_name', '', 'Robot only: robot name for MoveItConfigsBuilder (with '
             'moveit_config_package).'),
    Argument('bags', '', 'Replay only (required there): what to play, an episode bag, a '
             'directory of bags or a run directory.'),
    Argument('rate', '', 'Replay only: playback speed, 2.0 = twice as fast as recorded '
             "(empty: the parameter files' value, 1.0)."),
)

# Every profile starts perception and affordance: the namespace, the parameter files, the hand, the
# log level and the affordance model act on them.
_COMMON = ('namespace', 'params_file', 'hand_config', 'log_level', 'affordance_checkpoint')
# The arm's MoveIt configuration: read by the arm's moveit backend, the robot profile's.
_MOVEIT = ('planning_group', 'moveit_config', 'moveit_config_package', 'robot_name')
PROFILE_ARGUMENTS: Dict[str, Tuple[str, ...]] = {
    'sim': _COMMON + ('reward_source',),
    'robot': _COMMON + ('reward_source', 'camera_namespace') + _MOVEIT,
    'replay': _COMMON + ('bags', 'rate'),
}
# Declared without a default: launch refuses to start without them.
REQUIRED: Dict[str, Tuple[str, ...]] = {'replay': ('bags',)}


def declared_arguments(profile: str) -> List[Tuple[str, Optional[str], str]]:
    """
    Return the launch arguments a profile declares: (name, default, description), in order.

    The default is None for a required argument. ValueError for an unknown profile.
    """
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; expected one of {", ".join(PROFILES)}')
    offered = PROFILE_ARGUMENTS[profile]
    required = REQUIRED.get(profile, ())
    return [(a.name, None if a.name in required else a.default, a.description)
            for a in ARGUMENTS if a.name in offered]

# Robot profile: the camera driver's topics (RealSense wrapper layout, depth aligned to colour),
# remapped in every node with camera_input (perception, affordance, episode).
CAMERA_REMAPS = (
    ('camera/color/image_raw', '{camera}/color/image_raw'),
    ('camera/depth/image_raw', '{camera}/aligned_depth_to_color/image_raw'),
    ('camera/color/camera_info', '{camera}/color/camera_info'),
)


@dataclass(frozen=True)
class NodeLaunch:
    """One node, fully resolved: what the runner executes and what launch_ros receives."""

    name: str
    package: str
    executable: str
    namespace: str
    param_files: Tuple[str, ...]
    overrides: Dict[str, object] = field(default_factory=dict)
    remappings: Tuple[Tuple[str, str], ...] = ()
    log_level: str = 'info'
    respawn: bool = True

    def ros_args(self, overrides_file: Optional[str] = None) -> List[str]:
        """
        Return the `--ros-args ...` command-line arguments of the node process.

        Overrides go last as a parameter file (`overrides_file`, written by the caller from
        overrides_yaml()): rcl applies `-p` values as a `/**` wildcard section, which the
        node-specific sections of the YAML files then override again, so `-p` alone would lose.
        Without a file the overrides are given as `-p` (enough where no file sets the same name).
        """
        args = ['--ros-args', '-r', f'__node:={self.name}', '-r', f'__ns:={self.namespace}',
                '--log-level', self.log_level]
        for f in self.param_files:
            args += ['--params-file', f]
        if self.overrides and overrides_file:
            args += ['--params-file', overrides_file]
        else:
            for key, value in self.overrides.items():
                args += ['-p', f'{key}:={json.dumps(value)}']
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args

    def overrides_yaml(self) -> str:
        """Return the overrides as a parameter file with this node's section (JSON is YAML)."""
        return json.dumps({f'/**/{self.name}': {'ros__parameters': dict(self.overrides)}},
                          indent=2) + '\n'

    def launch_kwargs(self) -> dict:
        """Return keyword arguments for launch_ros.actions.Node."""
        parameters: List[object] = list(self.param_files)
        if self.overrides:  # a file with this node's section, for the reason in ros_args()
            parameters.append(write_param_file(f'deft_{self.name}', self.overrides_yaml()))
        return dict(package=self.package, executable=self.executable, name=self.name,
                    namespace=self.namespace, parameters=parameters,
                    remappings=list(self.remappings), output='screen',
                    arguments=['--ros-args', '--log-level', self.log_level],
                    respawn=self.respawn, respawn_delay=RESPAWN_DELAY,
                    respawn_max_retries=RESPAWN_MAX_RETRIES if self.respawn else 0)


def param_file_dir() -> Path:
    """Return the directory of the generated parameter files (one per user, in the temp dir)."""
    return Path(tempfile.gettempdir()) / f'deft_params_{os.getuid()}'


def write_param_file(prefix: str, text: str) -> str:
    """
    Write a generated parameter file named after its content and return its path.

    The name holds a hash of the text, so launching the same graph again reuses the same file
    instead of leaving a new temporary behind each time; written atomically (write, rename), so
    two launches at once never read a half-written file.
    """
    folder = param_file_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f'{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml'
    if not path.is_file() or path.read_text() != text:
        with tempfile.NamedTemporaryFile('w', dir=folder, prefix='.tmp_', delete=False) as f:
            f.write(text)
        os.replace(f.name, path)
    return str(path)


DDS_PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def dds_environment(config_dir: Optional[Path] = None,
                    env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """
    Return the environment every node process gets for DDS: config/fastdds.xml as its profile.

    Empty when the environment (`env`, default os.environ) already names a profile: theirs wins.
    """
    if (os.environ if env is None else env).get(DDS_PROFILE_VARIABLE):
        return {}
    folder = Path(config_dir) if config_dir else share_dir() / 'config'
    return {DDS_PROFILE_VARIABLE: str(folder / 'fastdds.xml')}


def share_dir() -> Path:
    """Return the installed share/deft_bringup directory."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('deft_bringup'))


def argument_defaults() -> Dict[str, str]:
    """Return {argument name: default}."""
    return {a.name: a.default for a in ARGUMENTS}


def describe(profile: str, arguments: Optional[Dict[str, str]] = None,
             overrides: Optional[Dict[str, Dict[str, object]]] = None,
             config_dir: Optional[Path] = None,
             only: Optional[Sequence[str]] = None) -> List[NodeLaunch]:
    """
    Resolve the graph of a profile ('sim', 'robot' or 'replay') into the nodes to start.

    `arguments` are launch-argument values (see ARGUMENTS); `overrides` maps node name to extra
    parameter values; `only` restricts the graph to some node names (tests).
    """
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; expected one of {", ".join(PROFILES)}')
    args = argument_defaults()
    unknown = sorted(set(arguments or {}) - set(args))
    if unknown:
        raise ValueError(f'unknown launch arguments {unknown}; known: {", ".join(args)}')
    args.update({k: v for k, v in (arguments or {}).items() if v is not None})
    config = Path(config_dir) if config_dir else share_dir() / 'config'
    names = [n.name for n in NODES if profile in n.profiles]
    for name in list(overrides or {}) + list(only or []):
        if name not in names:
            raise ValueError(f'no node {name!r} in profile {profile!r}; nodes: {", ".join(names)}')
    shared: Dict[str, object] = {}
    if args['hand_config']:
        shared['hand_config'] = args['hand_config']
    result = []
    for spec in NODES:
        if profile not in spec.profiles or (only and spec.name not in only):
            continue
        files = [config / 'common.yaml', config / f'{spec.name}.yaml',
                 config / f'profile.{profile}.yaml']
        if args['params_file']:
            files.append(Path(args['params_file']))
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ValueError(f'parameter files not found: {", ".join(missing)}')
        values = dict(shared)
        if spec.name == 'episode' and args['reward_source']:
            values['default_reward_source'] = args['reward_source']
        if spec.name == 'bag_player':
            values.update(_player_values(args))
        if spec.name == 'affordance' and args['affordance_checkpoint']:
            values.update(backend='model', checkpoint=str(
                Path(args['affordance_checkpoint']).expanduser().absolute()))
        if spec.name == 'arm':
            values.update(_moveit_values(args))
        values.update((overrides or {}).get(spec.name, {}))
        if spec.name == 'bag_player':
            _check_bags(values)
        remaps: Tuple[Tuple[str, str], ...] = ()
        if profile == 'robot' and spec.camera_input:
            camera = args['camera_namespace'].rstrip('/')
            remaps = tuple((src, dst.format(camera=camera)) for src, dst in CAMERA_REMAPS)
        result.append(NodeLaunch(
            name=spec.name, package=spec.package, executable=spec.executable,
            namespace=args['namespace'], param_files=tuple(str(f) for f in files),
            overrides=values, remappings=remaps, log_level=args['log_level'],
            respawn=spec.respawn))
    return result


def _moveit_values(args: Dict[str, str]) -> Dict[str, object]:
    """Return the arm's MoveIt parameters set by the launch arguments."""
    values: Dict[str, object] = {}
    if args['planning_group']:
        values['moveit_planning_group'] = args['planning_group']
    if args['moveit_config'] and args['moveit_config_package']:
        raise ValueError('give moveit_config or moveit_config_package, not both')
    if args['moveit_config']:
        path = Path(args['moveit_config']).expanduser().absolute()
        if not path.is_file():
            raise ValueError(f'moveit_config: {path} is not a file')
        values['moveit_config_file'] = str(path)
    elif args['moveit_config_package']:
        values['moveit_config_file'] = moveit_config_from_package(
            args['moveit_config_package'], args['robot_name'])
    return values


def moveit_config_from_package(package: str, robot_name: str) -> str:
    """
    Build a MoveIt config package's parameters and write them as a `/**` parameter file.

    MoveItConfigsBuilder(robot_name, package_name=package).to_dict() is what MoveIt's own
    launch files pass to move_group; moveit_py reads the same from the file given to the arm
    node (moveit_config_file). ValueError when moveit_configs_utils or the package is missing.
    """
    if not robot_name:
        raise ValueError('moveit_config_package needs robot_name (the name the MoveIt Setup '
                         'Assistant gave the robot)')
    try:
        from moveit_configs_utils import MoveItConfigsBuilder
    except ImportError as exc:
        raise ValueError('moveit_config_package needs moveit_configs_utils (apt: '
                         'ros-$ROS_DISTRO-moveit-configs-utils)') from exc
    try:
        config = MoveItConfigsBuilder(robot_name, package_name=package).to_dict()
    except Exception as exc:  # noqa: B902 - package lookup, xacro and YAML errors of many types
        raise ValueError(f'moveit_config_package {package}: {exc}') from exc
    return write_param_file('deft_moveit', json.dumps(
        {'/**': {'ros__parameters': config}}, indent=1, default=str) + '\n')


def _player_values(args: Dict[str, str]) -> Dict[str, object]:
    """Return the bag player's parameters set by the bags and rate arguments."""
    values: Dict[str, object] = {}
    if args['bags']:  # absolute: the node's working directory may not be the caller's
        values['bags'] = str(Path(args['bags']).expanduser().absolute())
    if args['rate']:
        try:
            rate = float(args['rate'])
        except ValueError:
            rate = 0.0
        if not rate > 0.0:  # NaN too
            raise ValueError(f'rate must be a number above 0, got {args["rate"]!r}')
        values['rate'] = rate
    return values


def _check_bags(values: Dict[str, object]) -> None:
    """Raise ValueError unless the bag player has a bags path that exists."""
    if not values.get('bags'):
        raise ValueError('the replay profile needs bags: an episode bag, a directory of bags or '
                         'a run directory (bags:=<path>)')
    if not Path(str(values['bags'])).exists():
        raise ValueError(f'bags: {values["bags"]} does not exist')
