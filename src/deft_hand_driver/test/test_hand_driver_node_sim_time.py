"""On sim time a grasp sent before the node's first /clock is timed from the clock's start."""

from pathlib import Path
import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.action import ActionClient  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.time import Time  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from deft_common.executors import PoolExecutor  # noqa: E402
from deft_hand_driver.hand_driver_node import HandDriverNode  # noqa: E402
from deft_interfaces.action import HandGrasp  # noqa: E402

pytestmark = pytest.mark.timeout(60)
CONFIG = str(Path(__file__).resolve().parents[1] / 'config' / 'leap_16dof.yaml')
START = 1_800_000_000.0  # the sim node's clock starts near the wall clock's epoch seconds


def until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)
    return predicate()


def test_a_grasp_sent_before_the_first_clock_is_timed_from_the_clock_start():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    hand = HandDriverNode(context=ctx, parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('hand_config', value=CONFIG),
        Parameter('rate_hz', value=25.0), Parameter('settle_timeout', value=2.0)])
    probe = rclpy.create_node('sim_probe', context=ctx)
    clock_pub = probe.create_publisher(
        Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    grasp = ActionClient(probe, HandGrasp, 'hand/grasp')
    executor = PoolExecutor(4, context=ctx)
    executor.add_node(hand)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert grasp.wait_for_server(timeout_sec=10.0)
        assert not hand.clock.started()
        sent = grasp.send_goal_async(HandGrasp.Goal(joint_names=['index_mcp'],
                                                    joint_positions=[1.0], duration=0.5))
        assert until(lambda: sent.done() and sent.result().accepted)
        result = sent.result().get_result_async()
        time.sleep(0.3)  # the goal runs on a clock that has not started: nothing moves yet
        assert not result.done()
        t = START
        while not result.done() and t < START + 20.0:  # the sim node steps 40 ms at a time
            clock_pub.publish(Clock(clock=Time(nanoseconds=int(t * 1e9)).to_msg()))
            t += 0.04
            time.sleep(0.005)
        assert result.done(), 'no result within 20 s of sim time'
        answer = result.result().result
        assert answer.success and answer.error_code == 0, answer.message
        assert answer.joint_positions[0] == pytest.approx(1.0, abs=0.05)
        # reached after the 0.5 s ramp counted from the clock's start, not from time 0
        assert 'reached the targets' in answer.message and t - START < 5.0
    finally:
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=5.0)
        hand.destroy_node()
        probe.destroy_node()
        ctx.try_shutdown()
