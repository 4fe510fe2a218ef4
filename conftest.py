"""Test-wide environment: ROS 2 on localhost, a DDS domain of its own, logs in the tree."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# A domain id per test run (0..101 are safe with Fast DDS' default ports), so parallel runs and a
# demo left running on the same machine never see each other's nodes.
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_HOME', str(ROOT / '.ros'))
os.environ.setdefault('ROS_LOG_DIR', str(ROOT / '.ros' / 'log'))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU, no display
# The graph's DDS settings (3 s participant lease; see the file), as deft_run gives its nodes.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(ROOT / 'src' / 'deft_bringup' / 'config' / 'fastdds.xml'))


@pytest.fixture(scope='session')
def ros():
    """Initialise the default rclpy context for the session, unless something else did."""
    import rclpy

    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    yield
    if owned:
        rclpy.try_shutdown()


_EXIT_STATUS = [0]


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS[0] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """
    End the test process here, with pytest's exit status, rather than in Python's finalization.

    The tests' own ROS clients (rclpy executors, their thread pools, Fast DDS threads) live in
    this process. A thread of theirs that never returns kept a finalizing interpreter waiting
    once in CI after every test had been reported (the run then hit CI's time limit). The
    threads still alive here are listed with their stacks on stderr, so such a leak is seen and
    can be fixed, but it no longer hangs the run.
    """
    import sys
    import threading
    import traceback

    frames = sys._current_frames()
    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    for thread in stuck:
        stack = ''.join(traceback.format_stack(frames[thread.ident])) \
            if thread.ident in frames else '(no frame)\n'
        sys.stderr.write(f'conftest: thread {thread.name!r} still running at exit:\n{stack}')
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[0])
