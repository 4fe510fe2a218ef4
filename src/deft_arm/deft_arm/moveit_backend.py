"""
The `moveit` arm backend: MoveIt 2 through moveit_py, on the robot.

moveit_py comes with ROS 2 from apt (`ros-$ROS_DISTRO-moveit-py`), not from pip, so it is imported
only when this backend is built. One `MoveItPy` (and the rclcpp node it starts in this process)
lives as long as the arm node.

Every motion is planned from the current state first and executed only when the plan is valid: the
planner succeeded and the planned wrist path stays in the workspace box. The binding's `execute`
blocks until the controllers finish, so it runs on a helper thread while the caller's thread
reports progress, stops the arm (trajectory execution manager) on a stop request, and stops it at a
deadline: the planned duration plus `execution_timeout`. Straight wrist lines (the approach along
the palm's axis, the retreat) go to a Cartesian planner, Pilz `LIN` by default: moveit_py has no
`compute_cartesian_path`.

API of moveit_py on Jazzy (moveit2 `moveit_py/src/moveit/moveit_ros/moveit_cpp/*.cpp`):
`MoveItPy(node_name=..., launch_params_filepaths=[...])`, `execute(trajectory, controllers)`
(both arguments required, returns an `ExecutionStatus` whose truth and `.status` say the outcome),
`PlanRequestParameters(moveit_py, namespace)`, `PlanningComponent.plan(single_plan_parameters=...)`
returning a `MotionPlanResponse` (truth, `.trajectory`, `.error_code.val`).
"""

import copy
from dataclasses import dataclass
from pathlib import Path
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

from geometry_msgs.msg import Pose as PoseMsg
from geometry_msgs.msg import PoseStamped
import numpy as np

from deft_arm.arm_backend import ArmBackend, MotionError
from deft_arm.motion import Pose, Workspace
from deft_common import rotations

MISSING = ('the moveit arm backend needs moveit_py ({error}); it comes with ROS 2 from apt: '
           'sudo apt install ros-$ROS_DISTRO-moveit-py, then source '
           '/opt/ros/$ROS_DISTRO/setup.bash (or choose backend fake)')


@dataclass(frozen=True)
class MoveItSettings:
    """The arm node's `moveit_*` parameters (plus its frame and workspace), checked on creation."""

    base_frame: str = 'base_link'
    workspace: Optional[Workspace] = None
    node_name: str = 'arm_moveit_py'
    config_file: str = ''
    planning_group: str = 'arm'
    end_effector_link: str = 'tool0'
    planning_pipeline: str = 'ompl'
    planner_id: str = ''
    planning_time: float = 5.0
    planning_attempts: int = 1
    velocity_scaling: float = 0.1
    acceleration_scaling: float = 0.1
    linear_pipeline: str = 'pilz_industrial_motion_planner'
    linear_planner_id: str = 'LIN'
    execution_timeout: float = 10.0
    ik_timeout: float = 0.05
    stop_timeout: float = 5.0

    def __post_init__(self):
        for name in ('base_frame', 'node_name', 'planning_group', 'end_effector_link',
                     'planning_pipeline'):
            if not getattr(self, name):
                raise ValueError(f'moveit: {name} must not be empty')
        for name in ('planning_time', 'execution_timeout', 'ik_timeout', 'stop_timeout'):
            if not getattr(self, name) > 0:
                raise ValueError(f'moveit: {name} must be > 0 s, got {getattr(self, name)}')
        if self.planning_attempts < 1:
            raise ValueError(
                f'moveit: planning_attempts must be >= 1, got {self.planning_attempts}')
        for name in ('velocity_scaling', 'acceleration_scaling'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f'moveit: {name} must be in (0, 1], got {getattr(self, name)}')
        if self.config_file and not Path(self.config_file).is_file():
            raise ValueError(f'moveit: config_file {self.config_file!r} does not exist')


def to_msg(pose: Pose) -> PoseMsg:
    """Return a geometry_msgs Pose."""
    msg = PoseMsg()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in pose.position)
    o = msg.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in pose.orientation)
    return msg


def from_msg(msg: PoseMsg) -> Pose:
    """Return a Pose from a geometry_msgs Pose."""
    p, o = msg.position, msg.orientation
    return Pose(np.array([p.x, p.y, p.z], dtype=float),
                rotations.normalize([o.x, o.y, o.z, o.w]))


def error_name(code) -> str:
    """Name a moveit_msgs/MoveItErrorCodes value ('PLANNING_FAILED (-1)')."""
    val = getattr(code, 'val', code)
    names = [n for n in dir(type(code)) if n.isupper() and getattr(type(code), n) == val
             and isinstance(getattr(type(code), n), int)]
    return f'{names[0]} ({val})' if names else f'error code {val}'


def describe(pose: Pose) -> str:
    """Return the position of a pose for a message."""
    x, y, z = pose.position
    return f'({x:.3f}, {y:.3f}, {z:.3f}) m'


class MoveItArm(ArmBackend):
    """The wrist is `end_effector_link` of `planning_group`; poses are in `base_frame`."""

    def __init__(self, settings: MoveItSettings):
        self.s = settings
        try:
            from moveit.planning import MoveItPy, PlanRequestParameters
        except ImportError as exc:
            raise RuntimeError(MISSING.format(error=exc)) from exc
        options = {'node_name': settings.node_name}
        if settings.config_file:
            options['launch_params_filepaths'] = [settings.config_file]
        try:
            self.robot = MoveItPy(**options)
        except Exception as exc:  # noqa: BLE001 - the binding raises several types
            raise RuntimeError(
                f'moveit_py could not start ({exc}); check the MoveIt configuration '
                '(robot_description, robot_description_semantic, kinematics, planning pipelines, '
                'controllers) in moveit_config_file or in the --params-file arguments of this '
                'node') from exc
        try:
            self._check_model()
            self.component = self.robot.get_planning_component(settings.planning_group)
            self.monitor = self.robot.get_planning_scene_monitor()
            self.executor = self.robot.get_trajectory_execution_manager()
            self.params = self._plan_parameters(PlanRequestParameters, settings.planning_pipeline,
                                                settings.planner_id)
            self.linear_params = None
            if settings.linear_pipeline:
                self.linear_params = self._plan_parameters(
                    PlanRequestParameters, settings.linear_pipeline, settings.linear_planner_id)
            with self.monitor.read_only() as scene:
                matrix = np.asarray(
                    scene.current_state.get_frame_transform(settings.base_frame), dtype=float)
            self.model_from_base = rotations.Transform(matrix[:3, 3],
                                                       rotations.from_matrix(matrix[:3, :3]))
        except BaseException:
            self.robot.shutdown()
            raise

    def _check_model(self) -> None:
        """ValueError unless the group and both frames exist in the robot model."""
        s = self.s
        model = self.robot.get_robot_model()
        if not model.has_joint_model_group(s.planning_group):
            raise ValueError(f'planning group {s.planning_group!r} is not in the robot model; '
                             f'it has {", ".join(model.joint_model_group_names)}')
        with self.robot.get_planning_scene_monitor().read_only() as scene:
            for what, frame in (('end-effector link', s.end_effector_link),
                                ('base frame', s.base_frame)):
                if frame != model.model_frame and not scene.knows_frame_transform(frame):
                    raise ValueError(f'{what} {frame!r} is not a frame of the robot model '
                                     f'{model.name!r}')

    def _plan_parameters(self, factory, pipeline: str, planner_id: str):
        params = factory(self.robot, '')
        params.planning_pipeline = pipeline
        params.planner_id = planner_id
        params.planning_time = float(self.s.planning_time)
        params.planning_attempts = int(self.s.planning_attempts)
        params.max_velocity_scaling_factor = float(self.s.velocity_scaling)
        params.max_acceleration_scaling_factor = float(self.s.acceleration_scaling)
        return params

    # --- frames --------------------------------------------------------------------------
    def _to_model(self, pose: Pose) -> Pose:
        t = self.model_from_base
        return Pose(t.apply(pose.position), rotations.multiply(t.rotation, pose.orientation))

    def _to_base(self, msg: PoseMsg) -> Pose:
        pose, t = from_msg(msg), self.model_from_base.inverse()
        return Pose(t.apply(pose.position), rotations.multiply(t.rotation, pose.orientation))

    def current_pose(self) -> Pose:
        """Return the wrist pose of MoveIt's current robot state, base frame."""
        with self.monitor.read_only() as scene:
            return self._to_base(scene.current_state.get_pose(self.s.end_effector_link))

    # --- reachability --------------------------------------------------------------------
    def check_reachable(self, poses: Sequence[Tuple[str, Pose]]) -> Optional[str]:
        """
        Solve IK for each pose in turn (seeded by the previous solution); move nothing.

        Collisions are left to the planner: the grasp pose touches the object by design.
        """
        s = self.s
        with self.monitor.read_only() as scene:
            state = copy.copy(scene.current_state)
        for what, pose in poses:
            if not state.set_from_ik(s.planning_group, to_msg(self._to_model(pose)),
                                     s.end_effector_link, s.ik_timeout):
                return (f'{what} {describe(pose)} has no inverse-kinematics solution for '
                        f'{s.end_effector_link} of group {s.planning_group}')
        return None

    # --- motion --------------------------------------------------------------------------
    def move(self, path: List[Pose], rate_hz: float, should_stop: Callable[[], bool],
             on_step: Callable[[int, Pose], None], linear: bool = False) -> bool:
        """Plan to the path's last pose, check the plan, execute it; MotionError on failure."""
        if not path:
            return True
        if should_stop():
            return False
        trajectory = self.plan(path[-1], linear)
        if should_stop():
            return False
        return self.execute(trajectory, rate_hz, should_stop, on_step)

    def plan(self, goal: Pose, linear: bool = False):
        """Plan from the current state to the goal; MotionError unless the plan is valid."""
        s = self.s
        params = self.linear_params if linear and self.linear_params is not None else self.params
        target = PoseStamped()
        target.header.frame_id = s.base_frame
        target.pose = to_msg(goal)
        self.component.set_start_state_to_current_state()
        if not self.component.set_goal_state(pose_stamped_msg=target,
                                             pose_link=s.end_effector_link):
            raise MotionError(f'MoveIt refused the goal {describe(goal)} for '
                              f'{s.end_effector_link}')
        result = self.component.plan(single_plan_parameters=params)
        trajectory = getattr(result, 'trajectory', None) if result else None
        if trajectory is None or len(trajectory) == 0:
            planner = f'{params.planning_pipeline} {params.planner_id}'.strip()
            raise MotionError(f'planning to {describe(goal)} failed ({planner}: '
                              f'{error_name(result.error_code)}); the arm did not move')
        if s.workspace is not None:  # waypoint 0 is where the arm is now
            for k in range(1, len(trajectory)):
                pose = self._to_base(trajectory[k].get_pose(s.end_effector_link))
                reason = s.workspace.check(pose, f'planned waypoint {k} of {len(trajectory)}')
                if reason:
                    raise MotionError(f'the plan to {describe(goal)} leaves the workspace: '
                                      f'{reason}; the arm did not move')
        return trajectory

    def execute(self, trajectory, rate_hz: float, should_stop: Callable[[], bool],
                on_step: Callable[[int, Pose], None]) -> bool:
        """Execute a planned trajectory; False if stopped, MotionError if it failed."""
        outcome = {}

        def run():
            try:
                outcome['status'] = self.robot.execute(trajectory, controllers=[])
            except Exception as exc:  # noqa: BLE001 - reported as a MotionError below
                outcome['error'] = exc

        planned = float(trajectory.duration)
        allowed = planned + self.s.execution_timeout
        worker = threading.Thread(target=run, name='moveit_execute', daemon=True)
        start = time.monotonic()
        worker.start()
        k, stopped, stop_deadline = 0, '', 0.0
        while True:
            worker.join(1.0 / rate_hz)
            if not worker.is_alive():
                break
            on_step(k, self.current_pose())
            k += 1
            now = time.monotonic()
            if not stopped:
                if should_stop():
                    stopped = 'stop'
                elif now - start > allowed:
                    stopped = 'timeout'
                else:
                    continue
                stop_deadline = now + self.s.stop_timeout
            elif now > stop_deadline:
                raise MotionError(f'the arm did not stop within {self.s.stop_timeout} s of the '
                                  'stop request; check the controllers')
            self.executor.stop_execution()  # again while it runs: it may have started just now
        if 'error' in outcome:
            raise MotionError(f'execution failed: {outcome["error"]}')
        status = outcome['status']
        text = getattr(status, 'status', str(status))
        if stopped == 'timeout':
            raise MotionError(f'execution did not finish within {allowed:.1f} s (planned '
                              f'{planned:.1f} s + execution_timeout); the arm was stopped',
                              timed_out=True)
        if not status:
            if stopped == 'stop':
                return False
            raise MotionError(f'execution ended with status {text}',
                              timed_out=text == 'TIMED_OUT')
        on_step(k, self.current_pose())
        return True

    def close(self) -> None:
        """Stop any execution and shut moveit_py's node down."""
        robot, self.robot = getattr(self, 'robot', None), None
        if robot is None:
            return
        try:
            robot.get_trajectory_execution_manager().stop_execution()
        finally:
            robot.shutdown()
