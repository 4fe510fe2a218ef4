"""config/fastdds.xml parses in the Fast DDS rclpy links: on an error Fast DDS ignores the file."""

import os
from pathlib import Path
import subprocess
import sys

CONFIG = Path(__file__).resolve().parents[1] / 'config'

# A participant and a reliable publisher: the participant and data_writer profiles are read.
NODE = """
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('fastdds_profile_check')
node.create_publisher(String, 'fastdds_profile_check', 1).publish(String(data='x'))
node.destroy_node()
rclpy.shutdown()
print('created')
"""


def run_node(profile: Path) -> subprocess.CompletedProcess:
    # no discovery: the check's participant never meets the graphs of the other tests
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile),
               ROS_AUTOMATIC_DISCOVERY_RANGE='OFF')
    return subprocess.run([sys.executable, '-c', NODE], env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_profile_parses_without_an_error():
    out = run_node(CONFIG / 'fastdds.xml')
    assert out.returncode == 0 and 'created' in out.stdout, out.stderr
    assert 'XMLPARSER' not in out.stderr and 'Error' not in out.stderr, out.stderr


def test_a_bad_element_is_reported_so_the_check_can_fail(tmp_path):
    bad = tmp_path / 'fastdds.xml'
    bad.write_text((CONFIG / 'fastdds.xml').read_text().replace('heartbeat_period>',
                                                                'heartbeatPeriod>'))
    out = run_node(bad)
    assert 'XMLPARSER' in out.stderr
