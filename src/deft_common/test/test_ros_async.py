"""wait_for/sleep resume async callbacks on time without blocking the executor."""

import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.task import Future

from deft_common.ros_async import sleep, wait_for


@pytest.fixture
def node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = rclpy.create_node('async_test', context=ctx)
    ex = MultiThreadedExecutor(num_threads=2, context=ctx)
    ex.add_node(n)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()
    yield n, ex
    ex.shutdown(timeout_sec=2.0)
    n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def run(ex, coro_fn, timeout=5.0):
    task = ex.create_task(coro_fn)
    deadline = time.monotonic() + timeout
    while not task.done():
        assert time.monotonic() < deadline, 'coroutine never finished'
        time.sleep(0.01)
    return task.result()


def test_times_out_and_reports_it(node):
    n, ex = node
    never = Future()

    async def body():
        t0 = time.monotonic()
        done, value = await wait_for(n, never, 0.3)
        return done, value, time.monotonic() - t0

    done, value, waited = run(ex, body)
    assert (done, value) == (False, None)
    assert 0.25 < waited < 1.5
    assert never.cancelled()


def test_returns_the_result_when_in_time(node):
    n, ex = node
    fut = Future()
    timer = n.create_timer(0.1, lambda: fut.done() or fut.set_result(42))

    async def body():
        return await wait_for(n, fut, 3.0)

    assert run(ex, body) == (True, 42)
    timer.cancel()


def test_sleep_does_not_block_other_callbacks(node):
    n, ex = node
    ticks = []
    timer = n.create_timer(0.05, lambda: ticks.append(1))

    async def body():
        await sleep(n, 0.5)

    t0 = time.monotonic()
    run(ex, body)
    assert time.monotonic() - t0 >= 0.45
    assert len(ticks) >= 5
    timer.cancel()
