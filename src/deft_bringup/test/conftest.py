"""Fixtures that start the real graph as separate processes over DDS and always tear it down."""

import os
from pathlib import Path
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from deft_bringup.client import EpisodeClient
from deft_bringup.graph import describe
from deft_bringup.runner import GraphProcesses

ROOT = Path(__file__).resolve().parents[3]
CONFIG = Path(__file__).resolve().parents[1] / 'config'
# Faster than the defaults so the suite stays short; the behaviour under test is the same.
FAST = {
    'sim': {'camera_rate_hz': 4.0},
    'arm': {'max_speed': 1.0, 'max_angular_speed': 6.0},
    'hand_driver': {'default_duration': 0.3},
    'episode': {'service_timeout': 5.0, 'operator_timeout': 60.0},
}


def start_graph(name, profile='sim', overrides=None, only=None):
    """Start a graph with its logs under .ros/test-logs/<name>-<time>."""
    log_dir = ROOT / '.ros' / 'test-logs' / f'{name}-{time.strftime("%H%M%S")}-{os.getpid()}'
    nodes = describe(profile, overrides=overrides, config_dir=CONFIG, only=only)
    return GraphProcesses(nodes, log_dir=log_dir)


@pytest.fixture(scope='session')
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture(scope='module')
def graph(ros):
    """Start the whole sim graph, one process per node."""
    g = start_graph('graph', overrides=FAST)
    with g:
        yield g
    for name, proc in g.procs.items():
        assert proc.poll() is not None, f'{name} still running after teardown'


@pytest.fixture(scope='module')
def episodes(graph):
    client = EpisodeClient(name='test_episode_client')
    deadline = time.monotonic() + 60.0
    while not client.wait_for_server(timeout=0.5):
        dead = graph.exited()
        assert not dead, 'nodes died at start-up: ' + '; '.join(
            f'{n} ({rc}): {graph.tail(n)}' for n, rc in dead.items())
        assert time.monotonic() < deadline, 'run_episode did not come up within 60 s'
    yield client
    client.close()


class Probe:
    """A test-side node spinning in the background, for services and topics."""

    def __init__(self):
        self.node = Node('probe', namespace='/deft')
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        import threading
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def call(self, srv_type, name, request, timeout=10.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'service {name} not available'
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                assert time.monotonic() < deadline, f'{name} did not answer in {timeout} s'
                time.sleep(0.02)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


@pytest.fixture(scope='module')
def probe(ros):
    p = Probe()
    yield p
    p.close()


def wait_until(predicate, timeout, what):
    """Poll a predicate until true; fail the test with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out after {timeout} s waiting for {what}'
        time.sleep(0.05)
