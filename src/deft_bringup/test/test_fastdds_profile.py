"""
config/fastdds.xml parses, and its settings reach the endpoints they are meant for.

On an error in the file Fast DDS ignores all of it, silently for the nodes.
"""

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

# A service and a client whose answer reader the service's writer can never match (it asks for a
# durability the writer does not offer): each answer waits for the client as long as the
# response writer's max_blocking_time allows, then is dropped. Prints the wait.
LATE_CALLER = """
import time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_srvs.srv import Trigger
rclpy.init()
node = rclpy.create_node('fastdds_service_check')
starts = []
def answer(request, response):
    starts.append(time.monotonic())
    return response
node.create_service(Trigger, 'fastdds_service_check', answer)
never = node.create_client(Trigger, 'fastdds_service_check', qos_profile=QoSProfile(
    depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
time.sleep(0.5)
for _ in range(2):
    never.call_async(Trigger.Request())
deadline = time.monotonic() + 30
while len(starts) < 2 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
print(f'waited {starts[1] - starts[0]:.3f}' if len(starts) == 2 else f'answers {len(starts)}')
"""


def run_node(profile: Path, code: str = NODE) -> subprocess.CompletedProcess:
    # no discovery: the check's participant never meets the graphs of the other tests
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile),
               ROS_AUTOMATIC_DISCOVERY_RANGE='OFF')
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
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


def waited(profile: Path) -> float:
    out = run_node(profile, LATE_CALLER)
    assert out.returncode == 0 and 'waited' in out.stdout, out.stdout + out.stderr
    return float(out.stdout.split()[-1])


def test_a_service_answer_waits_seconds_for_its_caller_to_be_discovered(tmp_path):
    # the profile "service" reaches the response writers (rmw_fastrtps's fallback name); the
    # first answer is held for its max_blocking_time of 3 s before the second can be served
    assert waited(CONFIG / 'fastdds.xml') >= 2.9
    # without it Fast DDS's default 0.1 s applies: the comparison shows what the profile changes
    plain = tmp_path / 'fastdds.xml'
    plain.write_text((CONFIG / 'fastdds.xml').read_text().replace('profile_name="service"',
                                                                  'profile_name="unused"'))
    assert waited(plain) < 1.0
