"""The bag player: what it plays from episode and foreign bags, and the node as a process."""

import logging
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from deft_replay.bag_format import Frame, JointSample
from deft_replay.bag_writer import episode_bag_path, write_episode_bag
from deft_replay.playback import (
    BagMessage,
    BagPlayback,
    BagPlayError,
    import_message,
    playback_topic,
)

SRC = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000
GAP = 1_200_000_000  # initial to final frame, ns
JOINT_PERIOD = 300_000_000
K = [525.0, 0.0, 31.5, 0.0, 525.0, 23.5, 0.0, 0.0, 1.0]
RELATIVE = ['camera/color/image_raw', 'camera/depth/image_raw', 'camera/color/camera_info',
            'hand/joint_states', 'affordance/prior', 'episodes', 'episode/metadata']


def rgb(seed):
    return np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def write_episode(path, episode=1, namespace='/deft'):
    depth = np.full((12, 16), 0.8, np.float32)
    return write_episode_bag(
        path, initial=Frame(rgb(episode), K, depth, stamp_ns=T0),
        final=Frame(rgb(episode + 100), K, depth, stamp_ns=T0 + GAP),
        joint_states=[JointSample(T0 + k * JOINT_PERIOD, ['j0', 'j1'], [0.1 * k, -0.1 * k])
                      for k in range(4)],
        prior={'header': {'stamp': T0}, 'source': 'fake'},
        record={'run_id': 'r', 'episode': episode, 'reward': 0.5, 'stamp': T0 + GAP + 1},
        metadata={'seed': episode}, namespace=namespace)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp('run')
    for episode in (1, 2):
        write_episode(episode_bag_path(run, episode), episode)
    return run


def test_an_episode_bag_plays_every_topic_in_time_order(run_dir):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, JointState

    from deft_common.image_codec import to_rgb

    bag = episode_bag_path(run_dir, 1)
    playback = BagPlayback([bag])
    assert [p.path for p in playback.plans] == [bag] and playback.skipped == []
    plan = playback.plans[0]
    assert sorted(t.topic for t in plan.tracks) == sorted(RELATIVE)
    assert plan.total == 2 + 2 + 2 + 4 + 1 + 1 + 1
    assert GAP + 1 <= plan.duration_ns <= GAP + 2  # rosbags' end time may be exclusive
    messages = list(playback.messages(plan))
    assert len(messages) == plan.total
    assert all(isinstance(m, BagMessage) for m in messages)
    times = [m.time_ns for m in messages]
    assert times[0] == 0 and times == sorted(times)
    images = [m for m in messages if m.topic == 'camera/color/image_raw']
    assert [m.time_ns for m in images] == [0, GAP]
    assert images[0].msg_type is Image
    np.testing.assert_array_equal(to_rgb(deserialize_message(images[1].data, Image)), rgb(101))
    joints = [m for m in messages if m.topic == 'hand/joint_states']
    assert [m.time_ns for m in joints] == [k * JOINT_PERIOD for k in range(4)]
    state = deserialize_message(joints[2].data, JointState)
    assert list(state.name) == ['j0', 'j1'] and list(state.position) == pytest.approx([0.2, -0.2])


def test_a_run_directory_plays_its_bags_one_after_another(run_dir):
    playback = BagPlayback([run_dir])
    assert [p.path.name for p in playback.plans] == ['000001', '000002']
    messages = list(playback)
    assert len(messages) == 2 * playback.plans[0].total
    times = [m.time_ns for m in messages]
    assert times == sorted(times) and times[-1] == 2 * (GAP + 1)
    starts = [m.time_ns for m in messages if m.topic == 'camera/color/image_raw']
    assert starts == [0, GAP, GAP + 1, 2 * GAP + 1]  # the second bag starts at the first's end


def test_topic_selection_and_namespaces(run_dir, tmp_path):
    bag = episode_bag_path(run_dir, 1)
    warnings = []
    chosen = BagPlayback([bag], topics=['camera/color/image_raw', '/deft/hand/joint_states',
                                        'nope/absent'], warn=warnings.append)
    assert sorted(t.topic for t in chosen.plans[0].tracks) == [
        'camera/color/image_raw', 'hand/joint_states']
    assert warnings == ['topics nope/absent are in none of the bags']
    kept = BagPlayback([bag], recorded_namespace='')
    assert {t.topic for t in kept.plans[0].tracks} == {'/deft/' + r for r in RELATIVE}
    other = write_episode(tmp_path / 'robot2', namespace='/lab/robot2')
    played = BagPlayback([other], recorded_namespace='/lab/robot2/')
    assert {t.topic for t in played.plans[0].tracks} == set(RELATIVE)
    assert {t.topic for t in BagPlayback([other]).plans[0].tracks} == {
        '/lab/robot2/' + r for r in RELATIVE}


@pytest.mark.parametrize('recorded,namespace,expected', [
    ('/deft/camera/color/image_raw', '/deft', 'camera/color/image_raw'),
    ('/deft/camera/color/image_raw', 'deft/', 'camera/color/image_raw'),
    ('/deftx/a', '/deft', '/deftx/a'),
    ('/tf', '/deft', '/tf'),
    ('/deft/a', '', '/deft/a'),
    ('relative/a', '', 'relative/a'),
    ('camera/color/image_raw', '/deft', 'camera/color/image_raw'),
    ('deft/camera/color/image_raw', '/deft', 'camera/color/image_raw'),
])
def test_playback_topic(recorded, namespace, expected):
    assert playback_topic(recorded, namespace) == expected


def test_import_message():
    from sensor_msgs.msg import Image

    from deft_interfaces.msg import EpisodeRecord

    assert import_message('sensor_msgs/msg/Image') is Image
    assert import_message('sensor_msgs/Image') is Image
    assert import_message('deft_interfaces/msg/EpisodeRecord') is EpisodeRecord
    with pytest.raises(LookupError, match='not installed'):
        import_message('foo_msgs/msg/Mystery')
    with pytest.raises(LookupError, match='has no message Nope'):
        import_message('sensor_msgs/msg/Nope')
    with pytest.raises(LookupError, match='not a pkg/msg/Type'):
        import_message('Image')


def write_foreign(path, messages=2):
    """Write a bag of another source: a custom type not in rclpy, a stale definition, chatter."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg('float64 weirdness\nstring label\n',
                                      'my_robot_msgs/msg/Thing'))
    thing = store.types['my_robot_msgs/msg/Thing']
    string = store.types['std_msgs/msg/String']
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        things = writer.add_connection('/deft/thing', 'my_robot_msgs/msg/Thing', typestore=store)
        stale = writer.add_connection('/deft/stale', 'std_msgs/msg/String',
                                      msgdef='string data\nint32 extra\n',
                                      rihs01='RIHS01_' + '1' * 64)
        for k in range(messages):
            stamp = T0 + k * 10_000_000
            writer.write(chatter, stamp, store.serialize_cdr(
                string(data=f'hi {k}'), 'std_msgs/msg/String'))
            writer.write(things, stamp, store.serialize_cdr(
                thing(weirdness=1.5, label='x'), 'my_robot_msgs/msg/Thing'))
            writer.write(stale, stamp, store.serialize_cdr(
                string(data='old'), 'std_msgs/msg/String'))
    return path


def test_foreign_topics_and_types_are_skipped_with_one_warning_each(tmp_path, caplog):
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import String

    folder = tmp_path / 'other'
    write_foreign(folder / 'a')
    write_foreign(folder / 'b', messages=3)
    with caplog.at_level(logging.WARNING, logger='deft_replay.bag_player'):
        playback = BagPlayback([folder])
        messages = list(playback)
    assert [m.topic for m in messages] == ['/chatter'] * 5  # outside /deft: the recorded name
    assert [deserialize_message(m.data, String).data for m in messages] == [
        'hi 0', 'hi 1', 'hi 0', 'hi 1', 'hi 2']
    assert [m.time_ns for m in messages] == [0, 10_000_000, 10_000_000, 20_000_000, 30_000_000]
    assert len(playback.skipped) == 2 and len(caplog.records) == 2  # once over both bags
    assert 'skipping topic /deft/thing: its type my_robot_msgs/msg/Thing is not installed' \
        in caplog.text
    assert 'skipping topic /deft/stale: its std_msgs/msg/String definition differs' \
        in caplog.text


def test_paths_that_cannot_play_say_why(tmp_path, run_dir):
    with pytest.raises(BagPlayError, match='does not exist'):
        BagPlayback([tmp_path / 'nope'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagPlayError, match='no bags in'):
        BagPlayback([tmp_path / 'empty'])
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'x.mcap').write_bytes(b'not mcap')
    with pytest.raises(BagPlayError, match='nothing to play: .*x.mcap is not a readable rosbag2'):
        BagPlayback([broken])
    only_foreign = tmp_path / 'foreign'
    write_foreign(only_foreign)
    with pytest.raises(BagPlayError, match='nothing to play'):
        BagPlayback([only_foreign], topics=['/deft/thing'])
    # an unreadable bag among good ones is skipped with a warning
    mixed = tmp_path / 'mixed'
    write_episode(mixed / 'good')
    (mixed / 'zz.mcap').write_bytes(b'not mcap')
    warnings = []
    playback = BagPlayback([mixed], warn=warnings.append)
    assert [p.path.name for p in playback.plans] == ['good']
    assert len(warnings) == 1 and 'zz.mcap is not a readable rosbag2' in warnings[0]


# --- the node -------------------------------------------------------------------------------
@pytest.mark.parametrize('value,match', [
    ('', 'parameter bags is empty'),
    ('/nonexistent/deft/bags', 'bags /nonexistent/deft/bags: .* does not exist'),
])
def test_node_refuses_to_start_without_a_bag(ros, value, match):
    from rclpy.parameter import Parameter

    from deft_common.node_main import ConfigurationError
    from deft_replay.bag_player import BagPlayerNode

    with pytest.raises(ConfigurationError, match=match):
        BagPlayerNode(parameter_overrides=[Parameter('bags', value=value)])


def test_node_declares_its_parameters(ros, run_dir):
    from rclpy.parameter import Parameter

    from deft_common.ros_params import ParameterError
    from deft_replay.bag_player import PARAMS, BagPlayerNode

    node = BagPlayerNode(parameter_overrides=[
        Parameter('bags', value=str(run_dir)), Parameter('topics', value=['episodes']),
        Parameter('start_delay', value=3600.0)])
    try:
        assert all(node.has_parameter(p.name) for p in PARAMS)
        assert sorted(node.pubs) == ['episodes'] and node.p.topics == ['episodes']
        assert node.waiting == []
    finally:
        node.destroy_node()
    with pytest.raises(ParameterError, match='rate'):
        BagPlayerNode(parameter_overrides=[Parameter('bags', value=str(run_dir)),
                                           Parameter('rate', value=0.0)])


# --- the node as a process ------------------------------------------------------------------
def player_command(bag, namespace, *params):
    return [sys.executable, '-m', 'deft_replay.bag_player', '--ros-args', '-r',
            f'__ns:={namespace}', '-p', f'bags:={bag}'] + [a for p in params for a in ('-p', p)]


def player_env():
    env = dict(os.environ)
    own = [str(SRC / 'deft_replay'), str(SRC / 'deft_common')]
    env['PYTHONPATH'] = os.pathsep.join(own + [p for p in env.get('PYTHONPATH', '').split(
        os.pathsep) if p])
    return env


class Received:
    """Messages of one topic with their arrival times (monotonic, s)."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.items.append((time.monotonic(), msg))


@pytest.mark.integration
def test_player_process_publishes_at_the_recorded_timing(ros, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    from deft_common.image_codec import to_rgb

    bag = write_episode(tmp_path / 'episode')
    namespace = f'/bag_player_test_{os.getpid()}'
    rate = 2.0
    probe = Node('bag_player_probe', namespace=namespace)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    images, joints = Received(), Received()
    probe.create_subscription(Image, 'camera/color/image_raw', images, qos)
    probe.create_subscription(JointState, 'hand/joint_states', joints, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    log = tmp_path / 'player.log'
    cmd = player_command(bag, namespace, f'rate:={rate}', 'start_delay:=0.5',
                         "wait_for_subscribers:=['camera/color/image_raw','hand/joint_states']")
    try:
        with open(log, 'wb') as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env=player_env(), start_new_session=True)
            try:
                code = proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        text = log.read_text(errors='replace')
        assert code == 0, text
        deadline = time.monotonic() + 5.0
        while (len(images.items) < 2 or len(joints.items) < 4) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        executor.shutdown(timeout_sec=2.0)
        probe.destroy_node()
        spinner.join(timeout=2.0)
    assert 'bag 1/1' in text and 'played 13 messages from 1 bag(s)' in text, text
    assert len(images.items) == 2 and len(joints.items) == 4, text
    np.testing.assert_array_equal(to_rgb(images.items[0][1]), rgb(1))
    np.testing.assert_array_equal(to_rgb(images.items[1][1]), rgb(101))
    np.testing.assert_allclose([list(m.position) for _, m in joints.items],
                               [[0.1 * k, -0.1 * k] for k in range(4)])
    stamp = images.items[1][1].header.stamp  # the recorded header, untouched
    assert stamp.sec * 10**9 + stamp.nanosec == T0 + GAP
    # recorded timing / rate, per topic (a large image and a small joint state reach the probe
    # with different delays on a loaded machine; CI saw 0.12 s between the first two): the joint
    # states' median interval and the two frames' gap. As fast as possible would be about 0,
    # unscaled twice as long
    joint_gaps = np.diff([arrived for arrived, _ in joints.items])
    assert np.median(joint_gaps) == pytest.approx(JOINT_PERIOD / 1e9 / rate, abs=0.07)
    assert images.items[1][0] - images.items[0][0] == pytest.approx(GAP / 1e9 / rate, abs=0.15)


@pytest.mark.integration
def test_player_process_refuses_a_missing_bag(tmp_path):
    missing = tmp_path / 'no_such_bag'
    proc = subprocess.run(player_command(missing, '/bag_player_missing'), env=player_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f'cannot start: bags {missing}: {missing} does not exist' in proc.stderr
