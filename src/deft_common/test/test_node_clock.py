"""NodeClock: wall time without use_sim_time; /clock with it, and never a hang on a dead clock."""

import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock

from deft_common.node_clock import NodeClock, WallRate, uses_sim_time


@pytest.fixture
def nodes():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)  # the test run's domain: no graph runs beside the unit tests
    made = []

    def make(name, sim):
        n = rclpy.create_node(name, context=ctx, parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, sim)])
        made.append(n)
        return n
    ex = SingleThreadedExecutor(context=ctx)
    yield make, ex
    ex.shutdown(timeout_sec=2.0)
    for n in made:
        n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def test_without_sim_time_it_is_the_monotonic_clock(nodes):
    make, _ = nodes
    clock = NodeClock(make('wall', False))
    assert not clock.sim and not uses_sim_time(make('wall2', False))
    t0 = time.monotonic()
    assert abs(clock.now() - t0) < 0.05
    assert clock.sleep(0.05) and time.monotonic() - t0 >= 0.05
    stop = threading.Event()
    stop.set()
    assert not clock.wait_until(clock.now() + 5.0, stop)  # a stop ends the wait at once


def test_with_sim_time_it_follows_clock_and_gives_up_on_a_dead_one(nodes):
    make, ex = nodes
    node = make('sim_user', True)
    pub = make('clock_pub', False).create_publisher(
        Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    clock = NodeClock(node)
    assert clock.sim

    def tick(seconds):
        pub.publish(Clock(clock=Time(nanoseconds=int(seconds * 1e9)).to_msg()))

    deadline = time.monotonic() + 10.0
    while clock.now() < 100.0:  # discovery: publish until the node hears it
        assert time.monotonic() < deadline, '/clock never arrived'
        tick(100.0)
        time.sleep(0.02)
    # a dead clock: wait_until gives up after max_wall, it does not hang
    t0 = time.monotonic()
    assert not clock.wait_until(101.0, max_wall=0.2)
    assert 0.15 < time.monotonic() - t0 < 2.0
    # sim time 10 s ahead in a few ms of wall time: the wait ends on the clock, not on the wall
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(clock.sleep(10.0)))
    waiter.start()
    time.sleep(0.05)
    for k in range(1, 11):
        tick(100.0 + k * 1.01)
        time.sleep(0.01)
    waiter.join(timeout=5.0)
    assert woke == [True] and clock.now() >= 110.0
    # a clock that jumps back (a restarted sim node) ends a wait at once, not after the jump
    back = []
    waiter = threading.Thread(target=lambda: back.append(clock.wait_until(200.0, max_wall=5.0)))
    waiter.start()
    time.sleep(0.05)
    deadline = time.monotonic() + 5.0
    while clock.now() > 50.0 and time.monotonic() < deadline:
        tick(50.0)
        time.sleep(0.02)
    waiter.join(timeout=5.0)
    assert back == [True] and clock.now() == pytest.approx(50.0)
    clock.close()


def test_before_the_first_clock_a_sleep_and_a_duration_count_from_its_start(nodes):
    # a grasp goal can reach a node before its /clock subscription has matched the sim node
    make, ex = nodes
    node = make('late_clock', True)
    pub = make('late_pub', False).create_publisher(
        Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    clock = NodeClock(node)
    assert clock.now() == 0.0 and not clock.started()
    t0 = clock.now()  # read before the start
    assert clock.since(t0) == (0.0, 0.0)
    woke = []
    waiter = threading.Thread(target=lambda: woke.append((clock.sleep(2.0), clock.now())))
    waiter.start()
    time.sleep(0.3)
    assert woke == []  # no clock yet: it has not counted the 2 s from 0
    deadline = time.monotonic() + 10.0
    while not clock.started():  # discovery: publish until the node hears it
        assert time.monotonic() < deadline, '/clock never arrived'
        pub.publish(Clock(clock=Time(seconds=1000).to_msg()))
        time.sleep(0.02)
    assert clock.since(t0) == pytest.approx((1000.0, 0.0))  # from the start, not the epoch
    assert clock.since(999.0) == pytest.approx((999.0, 1.0))
    time.sleep(0.2)
    assert woke == []  # counting from 1000: 2 s of sim time to go
    for k in range(1, 5):
        pub.publish(Clock(clock=Time(seconds=1000 + k).to_msg()))
        time.sleep(0.05)
    waiter.join(timeout=5.0)
    assert woke and woke[0][0] and woke[0][1] >= 1002.0
    stop = threading.Event()
    stop.set()
    late = NodeClock(make('never_clock', True))  # a stop ends the wait for a start at once
    assert not late.started() and late.sleep(1.0, stop) is False
    clock.close()
    late.close()


def test_wall_rate_lets_through_the_first_the_forced_and_one_per_period(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, 'monotonic', lambda: now[0])
    rate = WallRate(10.0)
    passed = []
    for k in range(100):  # 100 events over 1 s of wall time at 10 Hz
        passed.append(rate.due(force=k == 99))
        now[0] += 0.01
    assert passed[0] and passed[-1]
    assert sum(passed) == 11  # at 0.0, 0.1, ..., 0.9 s, and the forced last one
    every = WallRate(0.0)
    assert all(every.due() for _ in range(5))
    with pytest.raises(ValueError, match='rate_hz'):
        WallRate(-1.0)
