"""PoolExecutor hands a ready callback to its pool once, where rclpy 9's executor spins on it."""

import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from std_msgs.msg import Int32

from deft_common.executors import PoolExecutor

pytestmark = pytest.mark.timeout(60)


class CountingMultiThreaded(MultiThreadedExecutor):
    """rclpy's executor, counting what it hands to its pool."""

    def __init__(self, num_threads, *, context):
        super().__init__(num_threads, context=context)
        self.submitted = 0
        submit = self._executor.submit

        def counted(*args, **kwargs):
            self.submitted += 1
            return submit(*args, **kwargs)
        self._executor.submit = counted


def until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)
    return predicate()


def busy_pool(executor_type, context, hold=1.0):
    """Hold both pool workers for `hold` s while 5 messages come; return (executor, data)."""
    node = rclpy.create_node('pool_test', context=context)
    group = ReentrantCallbackGroup()
    release, holding, got = threading.Event(), [], []

    def block(msg):
        holding.append(msg.data)
        release.wait(timeout=10.0)
    node.create_subscription(Int32, 'block', block, 10, callback_group=group)
    node.create_subscription(Int32, 'data', lambda m: got.append(m.data), 10,
                             callback_group=group)
    pub_block = node.create_publisher(Int32, 'block', 10)
    pub_data = node.create_publisher(Int32, 'data', 10)
    executor = executor_type(2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        assert until(lambda: pub_block.get_subscription_count() == 1)
        for i in range(2):
            pub_block.publish(Int32(data=i))
            assert until(lambda n=i + 1: len(holding) == n)  # one worker held per message
        for i in range(5):
            pub_data.publish(Int32(data=i))
        time.sleep(hold)  # the data waits in the pool: no worker is free
        assert got == []
        release.set()
        assert until(lambda: len(got) == 5)
        return executor, sorted(got)
    finally:
        release.set()
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)
        node.destroy_node()


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def test_rclpy_9_hands_a_queued_callback_to_its_pool_again_and_again(context):
    # the fault PoolExecutor exists for; when rclpy no longer has it, PoolExecutor can go
    executor, got = busy_pool(CountingMultiThreaded, context)
    assert got == [0, 1, 2, 3, 4]
    assert executor.submitted > 100


def test_pool_executor_hands_each_callback_to_its_pool_once(context):
    executor, got = busy_pool(PoolExecutor, context)
    assert got == [0, 1, 2, 3, 4]
    # 2 blocking callbacks, then the data: one task at a time is ready per subscription (the
    # next is taken once a worker has started it), so 2 + 5 submissions, a few more when a
    # message comes while its subscription's task waits
    assert 7 <= executor.submitted <= 12, executor.submitted
    assert executor.requeued >= 1  # it was offered again while queued, and waited instead


def test_a_callback_exception_still_reaches_spin_once(context):
    node = rclpy.create_node('pool_raise', context=context)
    node.create_timer(0.01, lambda: 1 / 0)
    executor = PoolExecutor(2, context=context)
    executor.add_node(node)
    try:
        with pytest.raises(ZeroDivisionError):
            for _ in range(200):
                executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
