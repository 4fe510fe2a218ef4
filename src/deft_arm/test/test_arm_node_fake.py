"""The arm node on the fake backend: the feedback of its motions."""

from deft_arm_test_goal_handle import Handle, run
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.time import Time

from deft_interfaces.action import ExecuteGrasp


@pytest.fixture
def arm():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    nodes = []

    def make(**params):
        from deft_arm.arm_node import ArmNode
        params = dict(dict(backend='fake', hand_timeout=0.1, max_speed=0.5,
                           control_rate_hz=100.0), **params)
        node = ArmNode(context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def grasp_goal():
    goal = ExecuteGrasp.Goal()
    goal.contact_point.header.frame_id = 'base_link'
    goal.contact_point.point.x, goal.contact_point.point.z = 0.35, 0.2
    goal.wrist_orientation.x, goal.wrist_orientation.w = 1.0, 0.0  # palm down
    goal.approach_distance = 0.05
    return goal


def stages(feedback):
    """Return {stage: [progress, ...]} in the order the feedback came."""
    out = {}
    for fb in feedback:
        out.setdefault(fb.stage, []).append(round(fb.progress, 6))
    return out


def test_feedback_rate_bounds_the_motion_feedback_but_keeps_each_stage_start_and_end(arm):
    every = Handle(grasp_goal())
    result = run(arm().run_grasp(every))
    # no hand driver: the grasp stage fails, the arm retreats; pre_grasp and approach moved
    assert every.status == 'aborted' and 'hand' in result.message
    full = stages(every.feedback)
    assert len(full['pre_grasp']) > 20  # one per motion step (0.3 m at 0.5 m/s, 100 Hz)
    limited = Handle(grasp_goal())
    run(arm(feedback_rate_hz=5.0).run_grasp(limited))
    few = stages(limited.feedback)
    assert few.keys() == full.keys()
    for stage, progress in few.items():  # a stage's start (0) and its end (1) always come
        if full[stage][-1] == 1.0:
            assert progress[0] == 0.0 and progress[-1] == 1.0, stage
    # pre_grasp lasts ~0.6 s: at 5 Hz, its start, at most ~4 steps and its end
    assert 3 <= len(few['pre_grasp']) <= 6 < len(full['pre_grasp'])


def test_the_result_says_when_the_last_motion_ended(arm):
    node = arm()
    handle = Handle(grasp_goal())
    result = run(node.execute(handle))  # no hand driver: the arm retreats after the approach
    end = Time.from_msg(result.motion_end).nanoseconds
    now = node.get_clock().now().nanoseconds
    assert 0 < end <= now and now - end < 0.5e9  # the retreat, the last motion, just ended
    assert node.busy is False
