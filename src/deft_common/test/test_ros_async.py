"""wait_for/sleep resume async callbacks on time without blocking the executor."""

import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from rosgraph_msgs.msg import Clock

from deft_common.executors import PoolExecutor
from deft_common.ros_async import sleep, sleep_sim, wait_for


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


class LostResponse:
    """An action client whose goal responses never arrive (as from a server still matching)."""

    def __init__(self, client):
        self.client = client

    def send_goal_async(self, goal, **kwargs):
        self.client.send_goal_async(goal, **kwargs)  # the goal reaches the server
        return Future()  # ... but its answer is lost

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.parametrize('lost', [False, True], ids=['answered', 'response_lost'])
def test_a_goal_whose_response_is_lost_is_taken_as_accepted_on_its_feedback(node, lost):
    from rclpy.action import ActionClient, ActionServer

    from deft_common.ros_async import ServerWatch, send_goal_served
    from deft_interfaces.action import ExecuteGrasp

    n, ex = node
    seen = []

    async def execute(handle):
        seen.append(bytes(handle.goal_id.uuid))
        for k in range(3):
            handle.publish_feedback(ExecuteGrasp.Feedback(stage=f'step{k}'))
            await sleep(n, 0.05)
        handle.succeed()
        return ExecuteGrasp.Result(success=True, final_stage='done')

    server = ActionServer(n, ExecuteGrasp, 'lost_test', execute)
    real = ActionClient(n, ExecuteGrasp, 'lost_test')
    assert real.wait_for_server(timeout_sec=10.0)
    client = LostResponse(real) if lost else real
    stages = []

    async def body():
        watch = ServerWatch.action(n, 'lost_test')
        ended, handle = await send_goal_served(n, client, ExecuteGrasp.Goal(), watch, 5.0,
                                               feedback_callback=lambda m: stages.append(
                                                   m.feedback.stage))
        if handle is None:
            return ended, None, None
        done, result = await wait_for(n, handle.get_result_async(), 5.0)
        return ended, bytes(handle.goal_id.uuid), result.result if done else None

    ended, goal_id, result = run(ex, body, timeout=15.0)
    assert ended == 'done'
    assert goal_id == seen[0]  # the handle is the goal the server ran
    assert result is not None and result.success and result.final_stage == 'done'
    assert stages[:3] == ['step0', 'step1', 'step2']  # the caller's feedback still arrives
    server.destroy()
    real.destroy()


def test_a_goal_with_neither_response_nor_feedback_times_out(node):
    from rclpy.action import ActionClient, ActionServer

    from deft_common.ros_async import ServerWatch, send_goal_served
    from deft_interfaces.action import ExecuteGrasp

    n, ex = node

    async def execute(handle):
        handle.succeed()  # no feedback: the lost response is all there was
        return ExecuteGrasp.Result(success=True)

    server = ActionServer(n, ExecuteGrasp, 'silent_test', execute)
    real = ActionClient(n, ExecuteGrasp, 'silent_test')
    assert real.wait_for_server(timeout_sec=10.0)

    async def body():
        watch = ServerWatch.action(n, 'silent_test')
        return await send_goal_served(n, LostResponse(real), ExecuteGrasp.Goal(), watch, 0.5)

    assert run(ex, body) == ('timeout', None)
    server.destroy()
    real.destroy()


def test_sleep_sim_counts_from_the_first_clock_and_gives_up_on_none():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = rclpy.create_node('sim_sleeper', context=ctx, parameter_overrides=[
        Parameter('use_sim_time', value=True)])
    pub = rclpy.create_node('sim_clock', context=ctx).create_publisher(
        Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    ex = PoolExecutor(num_threads=2, context=ctx)
    ex.add_node(n)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()
    try:
        async def nap(seconds, wall_timeout):
            ok = await sleep_sim(n, seconds, wall_timeout)
            return ok, n.get_clock().now().nanoseconds * 1e-9

        assert run(ex, nap(1.0, 0.3)) == (False, 0.0)  # no /clock at all: gives up
        task = ex.create_task(nap(1.0, 10.0))
        time.sleep(0.3)
        assert not task.done()  # the clock has not started: 1 s from 0 is not over
        t = 1000.0
        while not task.done() and t < 1010.0:
            pub.publish(Clock(clock=Time(nanoseconds=int(t * 1e9)).to_msg()))
            t += 0.1
            time.sleep(0.02)
        ok, woke = task.result()
        assert ok and woke >= 1001.0 - 1e-6  # a whole second counted from the first /clock
    finally:
        ex.shutdown(timeout_sec=2.0)
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)
