"""The hand driver node with backend dynamixel, in-process, against the emulated servo chain."""

from pathlib import Path
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from deft_common.node_main import ConfigurationError  # noqa: E402
from deft_hand_driver.emulated_bus import EmulatedBusProcess  # noqa: E402
from deft_hand_driver.hand_driver_node import HandDriverNode  # noqa: E402

pytestmark = pytest.mark.timeout(30)
CONFIG = str(Path(__file__).resolve().parents[1] / 'config' / 'leap_16dof.yaml')


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)  # domain and log dir: the root conftest
    yield ctx
    ctx.try_shutdown()


@pytest.fixture
def bus():
    chain = EmulatedBusProcess(ids=range(16))
    chain.start()
    yield chain
    chain.close()


def driver(context, port, **params):
    values = dict(backend='dynamixel', port=port, hand_config=CONFIG, rate_hz=100.0, **params)
    return HandDriverNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])


def spin_until(executor, predicate, deadline=5.0):
    end = time.monotonic() + deadline
    while not predicate() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.01)
    return predicate()


def test_node_publishes_the_bus_state_clamps_commands_and_lets_go(context, bus):
    node = driver(context, bus.port, current_limit=300.0, position_p=500)
    probe = rclpy.create_node('probe', context=context)
    states = []
    probe.create_subscription(JointState, 'hand/joint_states', states.append, 10)
    command = probe.create_publisher(JointState, 'hand/command', 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        assert [bus.read_table(i, 38, 2) for i in (0, 15)] == [300, 300]
        assert bus.read_table(7, 84, 2) == 500
        assert spin_until(executor, lambda: len(states) >= 3)
        assert len(states[-1].position) == 16
        assert spin_until(executor, lambda: command.get_subscription_count() > 0)
        command.publish(JointState(name=['index_mcp'], position=[9.0]))  # past the limit
        assert spin_until(executor, lambda: abs(states[-1].position[0] - 2.230) < 0.01)
        assert bus.read_table(0, 64, 1) == 1
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert [bus.read_table(i, 64, 1) for i in range(16)] == [0] * 16


def test_node_refuses_to_start_naming_the_missing_servo(context):
    chain = EmulatedBusProcess(ids=range(15))  # thumb_ip (id 15) unplugged
    try:
        chain.start()
        with pytest.raises(ConfigurationError, match=r'servo id 15 \(thumb_ip\)'):
            driver(context, chain.port)
    finally:
        chain.close()
