"""
The moveit backend's own logic against a test double of moveit_py (test/moveit_double.py).

The `world` fixture (conftest.py) puts the double into sys.modules as `moveit.planning` and
returns the fake robot behind it, configured per test; it records what the backend did.
"""

import math
import sys
import time

from deft_arm_test_moveit_double import (
    HOME,
    PALM_DOWN,
    ErrorCodes,
    State,
    compose,
    matrix,
    pose_of,
)
import numpy as np
import pytest

from deft_arm.backends import BACKENDS, MotionError, make_backend
from deft_arm.motion import Pose, Workspace
from deft_arm.moveit_backend import MoveItArm, MoveItSettings
from deft_common import rotations

BOX = Workspace(np.array([0.1, -0.5, 0.0]), np.array([0.8, 0.5, 0.7]))


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
