"""
Stopping a node is clean: exit code 0 and no traceback, also mid-goal and with two SIGINTs.

A Ctrl-C in the terminal of `ros2 launch` reaches every node twice (the terminal signals the
process group, and launch sends its own SIGINT). Before, the second one landed in the node's
cleanup as a KeyboardInterrupt (exit code -2), and a motion that published feedback after the
context was shut down printed RCLError "context is not valid".
"""

import os
import signal
import time

import pytest

from deft_bringup.testing import FAST_SIM, wait_until
from deft_interfaces.action import ExecuteGrasp

pytestmark = pytest.mark.integration
SLOW_ARM = {**FAST_SIM, 'arm': {'max_speed': 0.05, 'max_angular_speed': 0.5}}
PALM_DOWN = (1.0, 0.0, 0.0, 0.0)


def grasp_goal():
    goal = ExecuteGrasp.Goal()
    goal.contact_point.header.frame_id = 'base_link'
    goal.contact_point.point.x, goal.contact_point.point.z = 0.45, 0.1
    q = goal.wrist_orientation
    q.x, q.y, q.z, q.w = PALM_DOWN
    goal.approach_distance = 0.08
    return goal


def two_sigints(proc):
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    return proc.returncode


def test_nodes_stopped_twice_mid_goal_exit_0_without_traceback(make_graph, probe):
    graph = make_graph('shutdown', overrides=SLOW_ARM, only=['sim', 'hand_driver', 'arm'])
    with graph:
        client = probe.action_client(ExecuteGrasp, 'arm/execute_grasp')
        assert client.wait_for_server(timeout_sec=60.0), graph.tail('arm')
        stages = []
        future = client.send_goal_async(grasp_goal(),
                                        feedback_callback=lambda m: stages.append(
                                            m.feedback.stage))
        wait_until(lambda: len(stages) >= 3, 60, 'the arm to move')  # mid-motion
        assert two_sigints(graph.procs['arm']) == 0
        assert two_sigints(graph.procs['sim']) == 0
        assert two_sigints(graph.procs['hand_driver']) == 0
        assert future.done()
    for name in ('arm', 'sim', 'hand_driver'):
        log = graph.tail(name, 10**6)
        assert 'Traceback' not in log and 'RCLError' not in log, f'{name}:\n{log[-3000:]}'

