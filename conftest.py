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
