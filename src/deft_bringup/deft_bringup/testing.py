"""Helpers for tests that run the graph as processes: start it, probe it, wait with deadlines."""

import os
from pathlib import Path
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from rclpy.action import ActionClient
from rclpy.node import Node

from deft_bringup.graph import describe
from deft_bringup.runner import TAG_VARIABLE, GraphProcesses
from deft_common.executors import PoolExecutor

# Faster motions and rendering so test suites stay short; the behaviour under test is the same.
# The graph-mechanics suites run the kinematic world (deterministic, no physics);
# test_mujoco_graph.py runs the physics twin, the default of the sim profile.
FAST_SIM = {
    'sim': {'camera_rate_hz': 2.0, 'backend': 'fake'},
    'arm': {'max_speed': 1.0, 'max_angular_speed': 6.0},
    'hand_driver': {'default_duration': 0.3},
    'episode': {'service_timeout': 5.0, 'operator_timeout': 60.0},
}


# A graph without the sim node has no /clock: its nodes run on the wall clock (tests that play
# the camera themselves).
WALL_CLOCK = {'use_sim_time': False}


def start_graph(name: str, log_root: Path, profile: str = 'sim',
                overrides: Optional[Dict[str, dict]] = None,
                only: Optional[Sequence[str]] = None,
                config_dir: Optional[Path] = None) -> GraphProcesses:
    """Describe a graph (not yet started) with its logs under log_root/<name>-<time>-<pid>."""
    log_dir = Path(log_root) / f'{name}-{time.strftime("%H%M%S")}-{os.getpid()}'
    nodes = describe(profile, overrides=overrides, config_dir=config_dir, only=only)
    return GraphProcesses(nodes, log_dir=log_dir)


def tagged_processes(tag: str) -> List[int]:
    """
    Return the ids of the running processes whose environment holds DEFT_RUN_TAG=`tag`.

    GraphProcesses gives every node that variable, so this finds any node (or a process a node
    started) that outlived its graph. Reads /proc: Linux only; processes of other users, which
    cannot be read, are not ours anyway.
    """
    needle = f'{TAG_VARIABLE}={tag}'.encode()
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / 'environ').read_bytes()
            state = (entry / 'stat').read_text().rsplit(')', 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != 'Z' and needle in environ.split(b'\0'):
            found.append(int(entry.name))
    return sorted(found)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a predicate until true; raise AssertionError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.05)


class Probe:
    """A node spinning in a background thread, for calling services and watching topics."""

    def __init__(self, namespace: str = '/deft', name: str = 'probe'):
        self.node = Node(name, namespace=namespace)
        self.executor = PoolExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        # One client per service, kept: destroying a client while the executor thread waits on
        # it aborts the process inside rcl.
        self.clients: Dict[tuple, object] = {}
        self.lock = threading.Lock()

    def client(self, srv_type, name: str):
        """Return the probe's client of service `name` (created on first use)."""
        with self.lock:
            key = (srv_type, name)
            if key not in self.clients:
                self.clients[key] = self.node.create_client(srv_type, name)
            return self.clients[key]

    def subscribe(self, msg_type, topic: str, callback: Callable) -> tuple:
        """
        Call `callback` with each message on `topic` until unsubscribe(token); return the token.

        The subscription itself is created once per topic and kept: destroying one while the
        executor thread takes a message fails that callback ("cannot use Destroyable").
        """
        with self.lock:
            key = ('topic', msg_type, topic)
            if key not in self.clients:
                callbacks: List[Callable] = []

                def dispatch(msg, callbacks=callbacks):
                    for cb in list(callbacks):
                        cb(msg)
                self.clients[key] = (self.node.create_subscription(msg_type, topic, dispatch, 10),
                                     callbacks)
            self.clients[key][1].append(callback)
            return key, callback

    def unsubscribe(self, token: tuple) -> None:
        """Stop calling the callback of a subscribe() token."""
        key, callback = token
        with self.lock:
            self.clients[key][1].remove(callback)

    def publisher(self, msg_type, topic: str):
        """Return the probe's reliable publisher on `topic` (created on first use, kept)."""
        with self.lock:
            key = ('publisher', msg_type, topic)
            if key not in self.clients:
                self.clients[key] = self.node.create_publisher(msg_type, topic, 10)
            return self.clients[key]

    def action_client(self, action_type, name: str):
        """Return the probe's action client of `name` (created on first use, never destroyed).

        Destroying an action client while the executor thread adds it to a wait set kills that
        thread ("action client pointer is invalid"), and with it every later answer.
        """
        with self.lock:
            key = ('action', action_type, name)
            if key not in self.clients:
                self.clients[key] = ActionClient(self.node, action_type, name)
            return self.clients[key]

    def call(self, srv_type, name: str, request, timeout: float = 10.0,
             resend_after: Optional[float] = None):
        """
        Call a service and return its response; AssertionError if absent or silent.

        resend_after (s): send the request again while no answer came, for idempotent calls to
        a server that has just started: DDS may match its request reader (wait_for_service is
        true) before its response writer matches ours, and the first answer is then lost.
        """
        client = self.client(srv_type, name)
        start = time.monotonic()
        deadline = start + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f'service {name} not available within {timeout} s')
        futures = [client.call_async(request)]
        while not any(f.done() for f in futures):
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout} s waiting for an answer from '
                                     f'{name}')
            if resend_after and time.monotonic() > start + resend_after * len(futures):
                futures.append(client.call_async(request))
            time.sleep(0.02)
        for f in futures:  # the copies still pending: forget them (no answer will come)
            if not f.done():
                client.remove_pending_request(f)
                f.cancel()
        return next(f for f in futures if f.done() and not f.cancelled()).result()

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.thread.join(timeout=2.0)


def ready_client(probe: 'Probe', action_type, name: str):
    """
    Return an action client whose goals provably reach the server and whose answers come back.

    Right after a server (or this client) starts, discovery may be one-sided: a goal sent then is
    lost, or its response is. A malformed goal (empty task) is aborted with BAD_GOAL without side
    effects (the robot does not move, the node is not busy), so it is sent until one answer comes
    back; after that the goal service works both ways.
    """
    client = probe.action_client(action_type, name)
    assert client.wait_for_server(timeout_sec=30)
    deadline = time.monotonic() + 30
    while True:
        future = client.send_goal_async(action_type.Goal(task=''))
        end = time.monotonic() + 2.0
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        if future.done():
            return client
        assert time.monotonic() < deadline, f'{name} never answered a goal'


def send(client, goal, timeout: float, on_feedback: Optional[Callable] = None,
         kill_when: Optional[Callable] = None):
    """Send a FineTune goal; return (status, result, feedback list)."""
    feedback = []

    def fb(msg):
        feedback.append(msg.feedback)
        if on_feedback:
            on_feedback(msg.feedback)

    # A server that just (re)started may match the client's request writer a moment after
    # wait_for_server() said yes (it can still see the killed process' endpoints): a request
    # sent before the match is lost (volatile QoS), so send again, as a careful client does.
    # A late response may still accept an earlier copy: cancel it, so exactly one goal runs.
    # A copy rejected while an earlier one is still unanswered means the earlier one runs (its
    # response was lost): keep waiting for it rather than take the rejection.
    futures = []

    def answered():
        done = [f for f in futures if f.done()]
        return any(f.result().accepted for f in done) or len(done) == len(futures)

    for attempt in range(3):
        futures.append(client.send_goal_async(goal, feedback_callback=fb))
        try:
            wait_until(answered, 10, 'the fine_tune goal response')
            break
        except AssertionError:
            if attempt == 2:
                raise
    done = [f for f in futures if f.done()]
    future = next((f for f in done if f.result().accepted), done[0])
    for other in futures:
        if other is not future:
            other.add_done_callback(
                lambda f: f.result().accepted and f.result().cancel_goal_async())
    handle = future.result()
    assert handle.accepted
    result = handle.get_result_async()
    deadline = time.monotonic() + timeout
    while not result.done():
        if kill_when and kill_when(feedback):
            return None, None, feedback
        assert time.monotonic() < deadline, f'fine_tune did not finish in {timeout} s'
        time.sleep(0.05)
    return result.result().status, result.result().result, feedback
