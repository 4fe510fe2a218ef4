"""The arm node on the moveit backend, against the moveit_py double of test/moveit_double.py."""

import sys

from deft_arm_test_goal_handle import Handle, run
from deft_arm_test_moveit_double import PALM_DOWN, ErrorCodes
import pytest
import rclpy
from rclpy.parameter import Parameter

from deft_arm.moveit_backend import MoveItArm
from deft_common.node_main import ConfigurationError
from deft_interfaces.action import ExecuteGrasp

E = ExecuteGrasp.Result


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
