"""
The moveit backend's own logic against a test double of moveit_py.

moveit_py cannot be installed here (it comes with ROS 2 from apt), so `moveit.planning` is a fake
module put into sys.modules: it mirrors the Jazzy binding's calls (`MoveItPy(node_name=...)`,
`execute(trajectory, controllers)` without defaults, `PlanRequestParameters(moveit_py, ns)`, plan
results that are truthy on success, `ExecutionStatus.status`) and records what the backend did.
"""

import math
import sys
import threading
import time
import types

from geometry_msgs.msg import Pose as PoseMsg
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter

from deft_arm.backends import BACKENDS, MotionError, make_backend
from deft_arm.motion import Pose, Workspace
from deft_arm.moveit_backend import MoveItArm, MoveItSettings
from deft_common import rotations
from deft_common.node_main import ConfigurationError
from deft_interfaces.action import ExecuteGrasp

PALM_DOWN = np.array([1.0, 0.0, 0.0, 0.0])
HOME = Pose(np.array([0.35, 0.0, 0.35]), PALM_DOWN)
BOX = Workspace(np.array([0.1, -0.5, 0.0]), np.array([0.8, 0.5, 0.7]))
E = ExecuteGrasp.Result


# --- the test double -------------------------------------------------------------------------
def matrix(pose: Pose) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotations.to_matrix(pose.orientation)
    m[:3, 3] = pose.position
    return m


def compose(m: np.ndarray, pose: Pose) -> Pose:
    out = m @ matrix(pose)
    return Pose(out[:3, 3], rotations.from_matrix(out[:3, :3]))


def msg_of(pose: Pose) -> PoseMsg:
    msg = PoseMsg()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in pose.position)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (
        float(v) for v in pose.orientation)
    return msg


def pose_of(msg: PoseMsg) -> Pose:
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
        assert link_name == self.world.link
        return msg_of(self.wrist)

    def get_frame_transform(self, frame_id):
        return self.world.base_in_model if frame_id == self.world.base else np.eye(4)

    def set_from_ik(self, joint_model_group_name, geometry_pose, tip_name, timeout=0.0):
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
    def __init__(self, world):
        self.world = world
        self.current_state = State(world, world.start)

    def knows_frame_transform(self, frame_id):
        return frame_id in self.world.frames


class ReadOnly:
    def __init__(self, world):
        self.world = world

    def __enter__(self):
        return self.world.scene

    def __exit__(self, *exc):
        return False


class Monitor:
    def __init__(self, world):
        self.world = world

    def read_only(self):
        return ReadOnly(self.world)


class Component:
    """PlanningComponent: records start/goal calls, plans a straight line (or fails)."""

    def __init__(self, world):
        self.world = world
        self.start_from_current = False
        self.goal = None

    def set_start_state_to_current_state(self):
        self.start_from_current = True

    def set_goal_state(self, configuration_name=None, robot_state=None, pose_stamped_msg=None,
                       pose_link=None, motion_plan_constraints=None):
        assert pose_stamped_msg is not None and pose_link is not None
        self.goal = (pose_stamped_msg, pose_link)
        return True

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None, planning_scene=None,
             solution_selection_function=None, stopping_criterion_callback=None):
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
    def __init__(self, world):
        self.world = world

    def stop_execution(self, auto_clear=True):
        self.world.stops += 1
        if not self.world.ignore_stop:
            self.world.stop_event.set()


class Model:
    def __init__(self, world):
        self.world = world
        self.name = 'fake_arm'
        self.model_frame = 'world'
        self.joint_model_group_names = [world.group, 'hand']

    def has_joint_model_group(self, joint_model_group_name):
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

    def module(self):
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


@pytest.fixture
def world(monkeypatch):
    w = World()
    planning = w.module()
    package = types.ModuleType('moveit')
    package.planning = planning
    monkeypatch.setitem(sys.modules, 'moveit', package)
    monkeypatch.setitem(sys.modules, 'moveit.planning', planning)
    return w


def arm(**kw) -> MoveItArm:
    options = dict(workspace=BOX, execution_timeout=2.0, stop_timeout=2.0)
    options.update(kw)
    return make_backend('moveit', HOME, **options)


class Steps:
    def __init__(self, stop_after=None):
        self.poses = []
        self.stop_after = stop_after

    def __call__(self, k, pose):
        self.poses.append(pose)

    def should_stop(self):
        return self.stop_after is not None and len(self.poses) >= self.stop_after


def down(z=0.2):
    return [Pose(np.array([0.35, 0.0, z]), PALM_DOWN)]


# --- start-up ----------------------------------------------------------------------------
def test_without_moveit_py_the_error_names_it_and_its_apt_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'moveit', None)
    monkeypatch.setitem(sys.modules, 'moveit.planning', None)
    with pytest.raises(RuntimeError) as info:
        make_backend('moveit', HOME)
    assert 'needs moveit_py' in str(info.value)
    assert 'ros-$ROS_DISTRO-moveit-py' in str(info.value)
    assert 'moveit' in BACKENDS


def test_one_moveit_py_with_the_node_name_config_file_and_planner_settings(world, tmp_path):
    config = tmp_path / 'moveit.yaml'
    config.write_text('/**:\n  ros__parameters: {}\n')
    a = arm(node_name='deft_moveit', config_file=str(config), planning_pipeline='ompl',
            planner_id='RRTConnectkConfigDefault', planning_time=2.5, planning_attempts=3,
            velocity_scaling=0.2, acceleration_scaling=0.3)
    assert world.instances == [dict(node_name='deft_moveit',
                                     launch_params_filepaths=[str(config)])]
    p = a.params
    assert (p.planning_pipeline, p.planner_id, p.planning_time, p.planning_attempts) == \
        ('ompl', 'RRTConnectkConfigDefault', 2.5, 3)
    assert (p.max_velocity_scaling_factor, p.max_acceleration_scaling_factor) == (0.2, 0.3)
    lin = a.linear_params
    assert (lin.planning_pipeline, lin.planner_id, lin.max_velocity_scaling_factor) == \
        ('pilz_industrial_motion_planner', 'LIN', 0.2)
    a.move(down(), 100.0, lambda: False, Steps())
    assert len(world.instances) == 1  # held, never recreated
    a.close()
    a.close()
    assert world.shutdowns == 1


def test_without_a_config_file_moveit_py_reads_the_process_params_files(world):
    arm()
    assert world.instances == [dict(node_name='arm_moveit_py', launch_params_filepaths=())]


@pytest.mark.parametrize('kw, match', [
    (dict(planning_group='manipulator'),
     "planning group 'manipulator' is not in the robot model; it has arm, hand"),
    (dict(end_effector_link='palm'), "end-effector link 'palm' is not a frame"),
    (dict(base_frame='table'), "base frame 'table' is not a frame"),
])
def test_unknown_group_or_frames_stop_the_start_and_release_moveit_py(world, kw, match):
    with pytest.raises(ValueError, match=match):
        arm(**kw)
    assert world.shutdowns == 1


@pytest.mark.parametrize('kw, match', [
    (dict(velocity_scaling=0.0), 'velocity_scaling must be in'),
    (dict(planning_attempts=0), 'planning_attempts must be >= 1'),
    (dict(execution_timeout=-1.0), 'execution_timeout must be > 0'),
    (dict(planning_group=''), 'planning_group must not be empty'),
    (dict(config_file='/nonexistent/moveit.yaml'), 'does not exist'),
])
def test_settings_are_checked_before_moveit_py_starts(world, kw, match):
    with pytest.raises(ValueError, match=match):
        MoveItSettings(**kw)
    assert world.instances == []


# --- frames --------------------------------------------------------------------------------
def test_poses_are_in_the_base_frame_moveit_states_in_the_model_frame(world):
    # the base sits 0.5 m up in the model frame, turned 90 degrees about z
    base = Pose(np.array([0.0, 0.0, 0.5]), rotations.from_rotvec([0.0, 0.0, math.pi / 2]))
    world.base_in_model = matrix(base)
    world.scene.current_state = State(world, compose(world.base_in_model, HOME))
    a = arm()
    now = a.current_pose()
    np.testing.assert_allclose(now.position, HOME.position, atol=1e-9)
    assert rotations.angle_between(now.orientation, HOME.orientation) < 1e-9
    goal = Pose(np.array([0.4, 0.1, 0.2]), PALM_DOWN)
    assert a.check_reachable([('grasp pose', goal)]) is None
    np.testing.assert_allclose(world.ik_calls[0].position, [-0.1, 0.4, 0.7], atol=1e-9)
    assert a.move([goal], 100.0, lambda: False, Steps()) is True
    msg, link = world.plans[0][:2]
    assert (msg.header.frame_id, link) == ('base_link', 'tool0')
    np.testing.assert_allclose(pose_of(msg.pose).position, goal.position)
    np.testing.assert_allclose(a.current_pose().position, goal.position, atol=1e-9)


# --- reachability --------------------------------------------------------------------------
def test_reachability_check_rejects_an_unreachable_pose_without_moving(world):
    world.reachable = lambda pose: pose.position[2] >= 0.15
    a = arm()
    pre, grasp = Pose(np.array([0.45, 0.0, 0.18]), PALM_DOWN), down(0.1)[0]
    reason = a.check_reachable([('pre-grasp pose', pre), ('grasp pose', grasp),
                                ('post-grasp waypoint 0', pre)])
    assert reason == ('grasp pose (0.350, 0.000, 0.100) m has no inverse-kinematics solution '
                      'for tool0 of group arm')
    assert len(world.ik_calls) == 2  # stops at the first unreachable pose
    assert (world.plans, world.executions, world.stops) == ([], [], 0)
    np.testing.assert_allclose(a.current_pose().position, HOME.position)  # IK on a copy
    assert a.check_reachable([('pre-grasp pose', pre)]) is None


# --- planning ------------------------------------------------------------------------------
def test_move_plans_from_the_current_state_to_the_last_pose_and_executes_the_plan(world):
    a = arm()
    steps = Steps()
    path = [down(0.3)[0], down(0.25)[0], down(0.2)[0]]
    assert a.move(path, 100.0, lambda: False, steps) is True
    assert len(world.plans) == 1
    msg, link, pipeline, planner = world.plans[0]
    np.testing.assert_allclose(pose_of(msg.pose).position, [0.35, 0.0, 0.2])
    np.testing.assert_allclose(pose_of(msg.pose).orientation, PALM_DOWN)
    assert (link, pipeline, planner) == ('tool0', 'ompl', '')
    assert len(world.executions) == 1 and world.executions[0][1] == []
    assert steps.poses, 'progress is reported'
    np.testing.assert_allclose(steps.poses[-1].position, [0.35, 0.0, 0.2])
    np.testing.assert_allclose(a.current_pose().position, [0.35, 0.0, 0.2])
    assert a.move([], 100.0, lambda: False, steps) is True  # nothing to do
    assert len(world.plans) == 1


def test_linear_moves_use_the_cartesian_planner_when_there_is_one(world):
    arm().move(down(), 100.0, lambda: False, Steps(), linear=True)
    assert world.plans[-1][2:] == ('pilz_industrial_motion_planner', 'LIN')
    arm(linear_pipeline='').move(down(0.25), 100.0, lambda: False, Steps(), linear=True)
    assert world.plans[-1][2:] == ('ompl', '')


def test_plan_failure_stops_before_any_execution(world):
    world.plan_code = ErrorCodes.PLANNING_FAILED
    a = arm()
    with pytest.raises(MotionError) as info:
        a.move(down(), 100.0, lambda: False, Steps())
    assert str(info.value) == ('planning to (0.350, 0.000, 0.200) m failed (ompl: '
                               'PLANNING_FAILED (-1)); the arm did not move')
    assert not info.value.timed_out
    assert world.executions == []
    np.testing.assert_allclose(a.current_pose().position, HOME.position)


def test_a_plan_that_leaves_the_workspace_is_not_executed(world):
    world.detour = Pose(np.array([0.35, 0.0, -0.05]), PALM_DOWN)  # below the table
    with pytest.raises(MotionError, match=r'leaves the workspace: planned waypoint 2 of 6 z = '
                       r'-0.050 m is below the workspace minimum 0.000; the arm did not move'):
        arm().move(down(), 100.0, lambda: False, Steps())
    assert world.executions == []


def test_stop_requested_before_execution_moves_nothing(world):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1  # after planning, before executing

    assert arm().move(down(), 100.0, stop, Steps()) is False
    assert len(world.plans) == 1 and world.executions == []
    assert arm().move(down(), 100.0, lambda: True, Steps()) is False
    assert len(world.plans) == 1


# --- execution -----------------------------------------------------------------------------
@pytest.mark.parametrize('status, timed_out', [('ABORTED', False), ('FAILED', False),
                                               ('TIMED_OUT', True)])
def test_a_failed_execution_status_is_reported(world, status, timed_out):
    world.execution = status
    with pytest.raises(MotionError, match=f'execution ended with status {status}') as info:
        arm().move(down(), 100.0, lambda: False, Steps())
    assert info.value.timed_out is timed_out
    assert len(world.executions) == 1


def test_an_error_from_the_binding_is_a_motion_error(world):
    world.execution = 'raise'
    with pytest.raises(MotionError, match='execution failed: controller manager not available'):
        arm().move(down(), 100.0, lambda: False, Steps())


def test_execution_past_its_deadline_is_stopped_with_a_timeout_error(world):
    world.execution, world.duration = 'hang', 0.1
    a = arm(execution_timeout=0.1)
    t0 = time.monotonic()
    with pytest.raises(MotionError) as info:
        a.move(down(), 100.0, lambda: False, Steps())
    assert info.value.timed_out
    assert str(info.value) == ('execution did not finish within 0.2 s (planned 0.1 s + '
                               'execution_timeout); the arm was stopped')
    assert world.stops >= 1 and world.stop_event.is_set()
    assert 0.2 <= time.monotonic() - t0 < 2.0


def test_should_stop_cancels_the_execution(world):
    world.execution = 'hang'
    steps = Steps(stop_after=3)
    t0 = time.monotonic()
    assert arm().move(down(), 100.0, steps.should_stop, steps) is False
    assert world.stops >= 1 and len(world.executions) == 1
    assert time.monotonic() - t0 < 2.0


def test_an_arm_that_does_not_stop_is_an_error(world):
    world.execution, world.ignore_stop = 'hang', True
    steps = Steps(stop_after=1)
    with pytest.raises(MotionError, match='the arm did not stop within 0.1 s') as info:
        arm(stop_timeout=0.1).move(down(), 100.0, steps.should_stop, steps)
    assert not info.value.timed_out  # a controller problem, not a slow motion
    assert world.stops >= 2  # asked again while it kept running
    world.stop_event.set()


# --- the node ------------------------------------------------------------------------------
class Handle:
    """Stands in for the action server's goal handle."""

    def __init__(self, goal):
        self.request = goal
        self.is_cancel_requested = False
        self.status = None
        self.feedback = []

    def abort(self):
        self.status = 'aborted'

    def succeed(self):
        self.status = 'succeeded'

    def canceled(self):
        self.status = 'canceled'

    def publish_feedback(self, fb):
        self.feedback.append(fb)


def run(coroutine):
    """Run a coroutine that never awaits (every outcome here ends before the first await)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError('run_grasp awaited something')


def grasp_goal(z=0.1):
    goal = ExecuteGrasp.Goal()
    goal.contact_point.header.frame_id = 'base_link'
    goal.contact_point.point.x, goal.contact_point.point.z = 0.45, z
    q = goal.wrist_orientation
    q.x, q.y, q.z, q.w = PALM_DOWN
    goal.approach_distance = 0.08
    return goal


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture
def arm_node(world, context):
    from deft_arm.arm_node import ArmNode
    nodes = []

    def make(**params):
        params = dict(dict(backend='moveit', hand_timeout=0.1), **params)
        node = ArmNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()


def test_node_passes_its_parameters_to_the_backend(world, arm_node):
    node = arm_node(moveit_planning_pipeline='chomp', moveit_velocity_scaling=0.5,
                    moveit_node_name='deft_moveit')
    assert isinstance(node.backend, MoveItArm)
    s = node.backend.s
    assert (s.planning_pipeline, s.velocity_scaling, s.node_name, s.base_frame) == \
        ('chomp', 0.5, 'deft_moveit', 'base_link')
    assert s.workspace is node.workspace


def test_node_without_moveit_py_refuses_to_start_with_the_reason(monkeypatch, context):
    from deft_arm.arm_node import ArmNode
    monkeypatch.setitem(sys.modules, 'moveit.planning', None)
    with pytest.raises(ConfigurationError, match='ros-\\$ROS_DISTRO-moveit-py'):
        ArmNode(context=context, parameter_overrides=[Parameter('backend', value='moveit')])


def test_node_rejects_an_unreachable_goal_before_any_motion(world, arm_node):
    world.reachable = lambda pose: pose.position[2] >= 0.15
    handle = Handle(grasp_goal(z=0.1))
    result = run(arm_node().run_grasp(handle))
    assert handle.status == 'aborted'
    assert (result.error_code, result.final_stage) == (E.UNREACHABLE, 'pre_grasp')
    assert result.message == ('unreachable: grasp pose (0.450, 0.000, 0.100) m has no '
                              'inverse-kinematics solution for tool0 of group arm')
    assert (world.plans, world.executions) == ([], [])


def test_node_aborts_with_motion_failed_when_planning_fails(world, arm_node):
    world.plan_code = ErrorCodes.PLANNING_FAILED
    handle = Handle(grasp_goal())
    result = run(arm_node().run_grasp(handle))
    assert handle.status == 'aborted'
    assert (result.error_code, result.final_stage) == (E.MOTION_FAILED, 'pre_grasp')
    assert result.message.startswith('pre_grasp: planning to (0.450, 0.000, 0.180) m failed '
                                     '(ompl: PLANNING_FAILED (-1)); the arm did not move')
    assert 'the hand did not open' in result.message
    assert len(world.plans) == 1 and world.executions == []  # no retreat from where it started


def test_node_aborts_with_timeout_when_an_execution_overruns(world, arm_node):
    world.execution, world.duration = 'hang', 0.0
    handle = Handle(grasp_goal())
    result = run(arm_node(moveit_execution_timeout=0.1).run_grasp(handle))
    assert handle.status == 'aborted'
    assert (result.error_code, result.final_stage) == (E.TIMEOUT, 'pre_grasp')
    assert 'pre_grasp: execution did not finish within 0.1 s' in result.message
    assert world.stops >= 1
