"""
A test double of moveit_py, for the moveit backend's tests without MoveIt.

moveit_py cannot be installed with pip (it comes with ROS 2 from apt), so the tests put the
module `World().module()` builds into sys.modules as `moveit.planning`. It mirrors the Jazzy
binding's calls (`MoveItPy(node_name=...)`, `execute(trajectory, controllers)` without defaults,
`PlanRequestParameters(moveit_py, ns)`, plan results that are truthy on success,
`ExecutionStatus.status`), and the World behind it is configured per test and records what the
backend did. Nothing here imports rclpy or pytest.
"""

import threading
import types

from geometry_msgs.msg import Pose as PoseMsg
import numpy as np

from deft_arm.motion import Pose
from deft_common import rotations

PALM_DOWN = np.array([1.0, 0.0, 0.0, 0.0])
HOME = Pose(np.array([0.35, 0.0, 0.35]), PALM_DOWN)


def matrix(pose: Pose) -> np.ndarray:
    """Return the 4 x 4 homogeneous matrix of a pose."""
    m = np.eye(4)
    m[:3, :3] = rotations.to_matrix(pose.orientation)
    m[:3, 3] = pose.position
    return m


def compose(m: np.ndarray, pose: Pose) -> Pose:
    """Return the pose moved by the 4 x 4 matrix m (m * pose)."""
    out = m @ matrix(pose)
    return Pose(out[:3, 3], rotations.from_matrix(out[:3, :3]))


def msg_of(pose: Pose) -> PoseMsg:
    """Return a geometry_msgs Pose."""
    msg = PoseMsg()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in pose.position)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (
        float(v) for v in pose.orientation)
    return msg


def pose_of(msg: PoseMsg) -> Pose:
    """Return a Pose from a geometry_msgs Pose (as it is: not normalised)."""
    p, o = msg.position, msg.orientation
    return Pose(np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]))


class ErrorCodes:
    """Stands in for moveit_msgs/MoveItErrorCodes."""

    SUCCESS = 1
    PLANNING_FAILED = -1
    NO_IK_SOLUTION = -31

    def __init__(self, val):
        self.val = val


class Status:
    """moveit_py's ExecutionStatus: truthy when SUCCEEDED, `.status` names it."""

    def __init__(self, status):
        self.status = status

    def __bool__(self):
        return self.status == 'SUCCEEDED'


class PlanResult:
    """MotionPlanResponse: truthy when the error code is SUCCESS."""

    def __init__(self, trajectory=None, code=ErrorCodes.SUCCESS):
        self.trajectory = trajectory
        self.error_code = ErrorCodes(code)

    def __bool__(self):
        return self.error_code.val == ErrorCodes.SUCCESS


class State:
    """RobotState: the end-effector link's pose in the model frame; IK against world.reachable."""

    def __init__(self, world, wrist_in_model: Pose):
        self.world = world
        self.wrist = wrist_in_model

    def __copy__(self):
        return State(self.world, self.wrist)

    def get_pose(self, link_name):
        """Return the end-effector link's pose (model frame)."""
        assert link_name == self.world.link
        return msg_of(self.wrist)

    def get_frame_transform(self, frame_id):
        """Return the base frame's 4 x 4 transform in the model frame (identity otherwise)."""
        return self.world.base_in_model if frame_id == self.world.base else np.eye(4)

    def set_from_ik(self, joint_model_group_name, geometry_pose, tip_name, timeout=0.0):
        """Move the wrist to the pose if world.reachable says so; record the call."""
        assert (joint_model_group_name, tip_name) == (self.world.group, self.world.link)
        assert isinstance(geometry_pose, PoseMsg) and timeout > 0
        pose = pose_of(geometry_pose)
        self.world.ik_calls.append(pose)
        if not self.world.reachable(pose):
            return False
        self.wrist = pose
        return True


class Trajectory:
    """RobotTrajectory: waypoint states and a planned duration."""

    def __init__(self, states, duration):
        self.states = states
        self.duration = duration

    def __len__(self):
        return len(self.states)

    def __getitem__(self, k):
        return self.states[k]


class Scene:
    """PlanningScene: the current state and the frames the model knows."""

    def __init__(self, world):
        self.world = world
        self.current_state = State(world, world.start)

    def knows_frame_transform(self, frame_id):
        """Return whether the frame is one of world.frames."""
        return frame_id in self.world.frames


class ReadOnly:
    """The context manager of PlanningSceneMonitor.read_only(): yields the scene."""

    def __init__(self, world):
        self.world = world

    def __enter__(self):
        return self.world.scene

    def __exit__(self, *exc):
        return False


class Monitor:
    """PlanningSceneMonitor."""

    def __init__(self, world):
        self.world = world

    def read_only(self):
        """Return a context manager that yields the scene."""
        return ReadOnly(self.world)


class Component:
    """PlanningComponent: records start/goal calls, plans a straight line (or fails)."""

    def __init__(self, world):
        self.world = world
        self.start_from_current = False
        self.goal = None

    def set_start_state_to_current_state(self):
        """Record that the plan starts from the current state."""
        self.start_from_current = True

    def set_goal_state(self, configuration_name=None, robot_state=None, pose_stamped_msg=None,
                       pose_link=None, motion_plan_constraints=None):
        """Record the pose goal (the only kind the backend sets)."""
        assert pose_stamped_msg is not None and pose_link is not None
        self.goal = (pose_stamped_msg, pose_link)
        return True

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None, planning_scene=None,
             solution_selection_function=None, stopping_criterion_callback=None):
        """Plan a straight line to the goal (plus world.detour), or fail with world.plan_code."""
        w = self.world
        assert self.start_from_current and self.goal is not None
        msg, link = self.goal
        w.plans.append((msg, link, single_plan_parameters.planning_pipeline,
                        single_plan_parameters.planner_id))
        self.start_from_current, self.goal = False, None
        if w.plan_code != ErrorCodes.SUCCESS:
            return PlanResult(code=w.plan_code)
        assert msg.header.frame_id == w.base
        goal = compose(w.base_in_model, pose_of(msg.pose))
        start = w.scene.current_state.wrist
        states = [State(w, Pose(start.position + t * (goal.position - start.position),
                                rotations.slerp(start.orientation, goal.orientation, t)))
                  for t in np.linspace(0.0, 1.0, 5)]
        if w.detour is not None:
            states.insert(2, State(w, w.detour))
        return PlanResult(Trajectory(states, w.duration))


class ExecutionManager:
    """TrajectoryExecutionManager: counts stop requests, ends a hanging execution."""

    def __init__(self, world):
        self.world = world

    def stop_execution(self, auto_clear=True):
        """Stop the execution (unless world.ignore_stop)."""
        self.world.stops += 1
        if not self.world.ignore_stop:
            self.world.stop_event.set()


class Model:
    """RobotModel: its name, model frame and joint model groups."""

    def __init__(self, world):
        self.world = world
        self.name = 'fake_arm'
        self.model_frame = 'world'
        self.joint_model_group_names = [world.group, 'hand']

    def has_joint_model_group(self, joint_model_group_name):
        """Return whether the group exists."""
        return joint_model_group_name in self.joint_model_group_names


class World:
    """The fake robot behind the fake moveit_py, configured per test; records every call."""

    def __init__(self):
        self.group, self.link, self.base = 'arm', 'tool0', 'base_link'
        self.frames = {'tool0', 'base_link', 'world'}
        self.base_in_model = np.eye(4)
        self.start = HOME
        self.reachable = lambda pose: True
        self.plan_code = ErrorCodes.SUCCESS
        self.detour = None  # a waypoint the planner inserts (model frame)
        self.duration = 0.05
        self.execution = 'SUCCEEDED'  # a status, 'hang' (until stopped) or 'raise'
        self.ignore_stop = False
        self.instances, self.plans, self.executions, self.ik_calls = [], [], [], []
        self.stops = self.shutdowns = 0
        self.stop_event = threading.Event()
        self.scene = Scene(self)

    def module(self) -> types.ModuleType:
        """Return a fake `moveit.planning` (MoveItPy, PlanRequestParameters) on this world."""
        world = self

        class MoveItPy:
            def __init__(self, node_name='moveit_py', name_space='', launch_params_filepaths=(),
                         config_dict=None, provide_planning_service=True, remappings=None):
                world.instances.append(dict(node_name=node_name,
                                            launch_params_filepaths=launch_params_filepaths))

            def execute(self, robot_trajectory, controllers):  # Jazzy: both required
                world.executions.append((robot_trajectory, controllers))
                if world.execution == 'raise':
                    raise RuntimeError('controller manager not available')
                if world.execution == 'hang':
                    world.stop_event.wait(5.0)
                    return Status('PREEMPTED')
                if world.execution == 'SUCCEEDED':
                    world.scene.current_state = State(world, robot_trajectory[-1].wrist)
                return Status(world.execution)

            def get_planning_component(self, planning_component_name):
                world.component = Component(world)
                return world.component

            def get_planning_scene_monitor(self):
                return Monitor(world)

            def get_trajectory_execution_manager(self):
                return ExecutionManager(world)

            def get_robot_model(self):
                return Model(world)

            def shutdown(self):
                world.shutdowns += 1

        class PlanRequestParameters:
            def __init__(self, moveit_py, namespace):
                assert isinstance(moveit_py, MoveItPy) and namespace == ''
                self.planner_id = self.planning_pipeline = ''
                self.planning_attempts, self.planning_time = 5, 1.0
                self.max_velocity_scaling_factor = self.max_acceleration_scaling_factor = 1.0

        planning = types.ModuleType('moveit.planning')
        planning.MoveItPy = MoveItPy
        planning.PlanRequestParameters = PlanRequestParameters
        return planning
