import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
import yaml

from deft_replay.bag_format import (
    TOPICS,
    EpisodeBagError,
    Frame,
    JointSample,
    build_message,
    episode_typestore,
    find_msg_dir,
)
from deft_replay.bag_reader import read_episode_bag
from deft_replay.bag_writer import EpisodeBagWriter, episode_bag_path, write_episode_bag

T0 = 1_700_000_000_123_456_789
T1 = T0 + 4_000_000_000
K = [525.0, 0.0, 31.5, 0.0, 525.0, 23.5, 0.0, 0.0, 1.0]
NAMES = ['contact_x', 'contact_y', 'wrist_rz']
PRIOR = {'header': {'stamp': T0, 'frame_id': 'base_link'},
         'contact_point': {'x': 0.4, 'y': -0.1, 'z': 0.05},
         'contact_pixels': [10.0, 20.0, 14.0, 22.0],
         'wrist_orientation': {'x': 0.0, 'y': 0.0, 'z': 0.38268343, 'w': 0.92387953},
         'hand_pose': list(np.linspace(-0.5, 0.5, 45)),
         'hand_joint_positions': [0.1, 0.2], 'hand_joint_names': ['j0', 'j1'], 'source': 'fake'}
RECORD = {'run_id': 'cup1', 'episode': 7, 'task': 'pick up the cup', 'xi': [0.4, -0.1, 0.3],
          'eps': [0.01, -0.02, 0.1], 'parameter_names': NAMES, 'reward': 0.75,
          'reward_source': 'operator', 'stamp': T1 + 1_000}
JOINTS = [JointSample(T0 + k * 100_000_000, ['j0', 'j1'], [0.1 * k, 0.2 * k], [0.0, 1.0])
          for k in range(3)]


def frames():
    rng = np.random.default_rng(3)
    rgb0 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rgb1 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth0 = rng.uniform(0.5, 1.0, (48, 64)).astype(np.float32)
    depth1 = (rng.uniform(0.5, 1.0, (48, 64)) * 1000).astype(np.uint16)
    return rgb0, rgb1, depth0, depth1


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    rgb0, rgb1, depth0, depth1 = frames()
    path = episode_bag_path(tmp_path_factory.mktemp('run'), 7)
    write_episode_bag(path, initial=Frame(rgb0, K, depth0, stamp_ns=T0),
                      final=Frame(rgb1, K, depth1, stamp_ns=T1), joint_states=JOINTS,
                      prior=PRIOR, record=RECORD,
                      metadata={'object_prompt': 'point: 30, 20', 'seed': 4})
    return path


def raw_messages(path):
    out = {}
    with Reader(path) as reader:
        for conn, stamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, bytes(raw)))
    return out


def test_layout_and_metadata(bag):
    assert bag.name == '000007' and bag.parent.name == 'bags'
    assert sorted(p.name for p in bag.iterdir()) == ['000007.mcap', 'metadata.yaml']
    assert [p.name for p in bag.parent.iterdir()] == ['000007']  # no temporary left behind
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    assert info['custom_data'] == {'object_prompt': 'point: 30, 20', 'seed': '4'}
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert set(topics) == {'/deft/' + rel for rel, _ in TOPICS.values()}
    counts = {name: t['message_count'] for name, t in topics.items()}
    assert counts['/deft/camera/color/image_raw'] == 2
    assert counts['/deft/camera/color/camera_info'] == 2
    assert counts['/deft/hand/joint_states'] == 3
    assert info['message_count'] == 2 + 2 + 2 + 3 + 1 + 1 + 1
    prefix = Path(os.environ['AMENT_PREFIX_PATH'].split(os.pathsep)[0]) / 'share'
    for t in topics.values():  # the hashes rosidl computed for the installed interfaces
        meta = t['topic_metadata']
        pkg, _, name = meta['type'].split('/')
        described = json.loads((prefix / pkg / 'msg' / f'{name}.json').read_text())
        assert meta['type_description_hash'] == described['type_hashes'][0]['hash_string']


def test_schemas_are_msg_text_for_foxglove(bag):
    with Reader(bag) as reader:
        for conn in reader.connections:
            assert conn.msgdef.format == MessageDefinitionFormat.MSG
            assert conn.msgdef.data
        record = next(c for c in reader.connections if c.topic == '/deft/episodes')
        assert 'float64[] xi' in record.msgdef.data
        assert 'MSG: builtin_interfaces/Time' in record.msgdef.data


def test_read_back(bag):
    rgb0, rgb1, depth0, depth1 = frames()
    got = read_episode_bag(bag)
    assert got.skipped == []
    np.testing.assert_array_equal(got.initial_rgb, rgb0)
    np.testing.assert_array_equal(got.final_rgb, rgb1)
    np.testing.assert_array_equal(got.initial_depth, depth0)
    np.testing.assert_allclose(got.final_depth, depth1 / 1000.0, rtol=1e-6)
    assert (got.initial_stamp_ns, got.final_stamp_ns) == (T0, T1)
    assert got.camera_k == K and (got.width, got.height) == (64, 48)
    assert got.joint_states == JOINTS
    assert got.reward == 0.75 and got.xi == RECORD['xi'] and got.eps == RECORD['eps']
    assert got.record['parameter_names'] == NAMES and got.record['bag_path'] == str(bag)
    assert got.record['stamp'] == {'sec': (T1 + 1000) // 10**9, 'nanosec': (T1 + 1000) % 10**9}
    assert got.prior['contact_point'] == PRIOR['contact_point']
    assert got.prior['hand_pose'] == pytest.approx(PRIOR['hand_pose'])
    assert got.prior['header']['frame_id'] == 'base_link'
    assert got.metadata == {'object_prompt': 'point: 30, 20', 'seed': 4}


def test_rclpy_deserialises_every_topic(bag):
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import String

    from deft_common.image_codec import depth_in_metres, to_rgb
    from deft_interfaces.msg import EpisodeRecord, GraspPrior

    rgb0, rgb1, depth0, _ = frames()
    raw = raw_messages(bag)
    images = [deserialize_message(d, Image) for _, d in raw['/deft/camera/color/image_raw']]
    np.testing.assert_array_equal(to_rgb(images[0]), rgb0)
    np.testing.assert_array_equal(to_rgb(images[1]), rgb1)
    assert images[0].header.frame_id == 'camera_color_optical_frame'
    assert (images[1].header.stamp.sec, images[1].header.stamp.nanosec) == divmod(T1, 10**9)
    depth = deserialize_message(raw['/deft/camera/depth/image_raw'][0][1], Image)
    np.testing.assert_array_equal(depth_in_metres(depth), depth0)
    info = deserialize_message(raw['/deft/camera/color/camera_info'][0][1], CameraInfo)
    assert list(info.k) == K and (info.width, info.height) == (64, 48)
    states = [deserialize_message(d, JointState) for _, d in raw['/deft/hand/joint_states']]
    assert [list(s.position) for s in states] == [j.positions for j in JOINTS]
    assert [s.name for s in states] == [j.names for j in JOINTS]
    prior = deserialize_message(raw['/deft/affordance/prior'][0][1], GraspPrior)
    assert prior.contact_point.x == 0.4 and prior.source == 'fake'
    assert prior.wrist_orientation.z == pytest.approx(0.38268343)
    assert list(prior.contact_pixels) == PRIOR['contact_pixels']
    assert list(prior.hand_joint_names) == ['j0', 'j1']
    record = deserialize_message(raw['/deft/episodes'][0][1], EpisodeRecord)
    for key in ('run_id', 'episode', 'task', 'reward', 'reward_source'):
        assert getattr(record, key) == RECORD[key]
    assert list(record.xi) == RECORD['xi'] and list(record.eps) == RECORD['eps']
    assert record.bag_path == str(bag)
    meta = deserialize_message(raw['/deft/episode/metadata'][0][1], String)
    assert json.loads(meta.data)['seed'] == 4
    stamps = {topic: [s for s, _ in v] for topic, v in raw.items()}
    assert stamps['/deft/camera/color/image_raw'] == [T0, T1]  # logged at the header stamps
    assert stamps['/deft/episodes'] == [T1 + 1000]


def test_rclpy_messages_are_accepted(tmp_path):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, JointState

    from deft_common.image_codec import to_msg
    from deft_interfaces.msg import EpisodeRecord, GraspPrior

    rgb0, rgb1, _, _ = frames()
    image = to_msg(rgb0[..., ::-1], 'bgr8')
    image.header.stamp = Time(sec=5, nanosec=6)
    image.header.frame_id = 'cam'
    info = CameraInfo(width=64, height=48, k=K)
    record = EpisodeRecord(run_id='r', episode=1, xi=[1.0], eps=[0.5], parameter_names=['a'],
                           reward=0.25, reward_source='sim', stamp=Time(sec=9))
    prior = GraspPrior(source='model', hand_joint_names=['j'], hand_joint_positions=[0.3])
    joint = JointState(name=['j'], position=[0.3])
    joint.header.stamp = Time(sec=6)
    path = write_episode_bag(tmp_path / 'b', initial=(image, info), final=(rgb1, info),
                             joint_states=[joint], prior=prior, record=record)
    got = read_episode_bag(path)
    np.testing.assert_array_equal(got.initial_rgb, rgb0)  # bgr8 decoded to RGB
    assert got.initial_stamp_ns == 5_000_000_006 and got.camera_k == K
    np.testing.assert_array_equal(got.final_rgb, rgb1)
    assert got.final_stamp_ns > got.initial_stamp_ns  # arrays without a stamp: now
    assert got.record['reward'] == 0.25 and got.record['stamp']['sec'] == 9
    assert got.prior['hand_joint_positions'] == [0.3]
    assert got.joint_states[0].stamp_ns == 6 * 10**9
    assert got.initial_depth is None and got.metadata == {}


def test_foreign_topics_and_types_are_skipped_with_a_warning(tmp_path, caplog):
    store = episode_typestore()
    ros = get_typestore(Stores.ROS2_KILTED)
    path = tmp_path / 'foreign'
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    with writer:
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=ros)
        mystery = writer.add_connection('/mystery', 'foo_msgs/msg/Mystery',
                                        msgdef='float64 weirdness\n',
                                        rihs01='RIHS01_' + '0' * 64)
        wrong = writer.add_connection('/deft/camera/color/image_raw', 'std_msgs/msg/String',
                                      typestore=ros)
        episodes = writer.add_connection('/robot2/episodes', 'deft_interfaces/msg/EpisodeRecord',
                                         typestore=store)
        string = ros.types['std_msgs/msg/String']
        writer.write(chatter, 1, ros.serialize_cdr(string(data='hi'), 'std_msgs/msg/String'))
        writer.write(mystery, 2, b'\x00\x01\x00\x00' + bytes(8))
        writer.write(wrong, 3, ros.serialize_cdr(string(data='x'), 'std_msgs/msg/String'))
        msg = build_message(store, 'deft_interfaces/msg/EpisodeRecord', dict(RECORD, stamp=12))
        writer.write(episodes, 4, store.serialize_cdr(msg, 'deft_interfaces/msg/EpisodeRecord'))
    with caplog.at_level(logging.WARNING, logger='deft_replay.bag_format'):
        got = read_episode_bag(path)
    assert got.record['episode'] == 7  # any namespace by default
    assert got.initial_rgb is None
    assert len(got.skipped) == 3
    text = caplog.text
    assert '/chatter (std_msgs/msg/String): not an episode topic' in text
    assert '/mystery (foo_msgs/msg/Mystery)' in text
    assert 'type std_msgs/msg/String, expected sensor_msgs/msg/Image' in text
    other = read_episode_bag(path, namespace='/deft')
    assert other.record is None and len(other.skipped) == 4


def test_changed_definition_is_skipped(tmp_path, caplog):
    store = episode_typestore()
    path = tmp_path / 'old'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/deft/episodes', 'deft_interfaces/msg/EpisodeRecord',
                                     msgdef='string run_id\n', rihs01='RIHS01_' + '1' * 64)
        writer.write(conn, 1, store.serialize_cdr(
            store.types['std_msgs/msg/String'](data='r'), 'std_msgs/msg/String'))
    with caplog.at_level(logging.WARNING):
        got = read_episode_bag(path)
    assert got.record is None
    assert 'definition differs' in caplog.text


def test_never_overwrites_and_leaves_nothing_on_failure(tmp_path, bag):
    rgb0, *_ = frames()
    with pytest.raises(FileExistsError, match='exists already'):
        write_episode_bag(bag, initial=(rgb0, K))
    writer = EpisodeBagWriter()
    with pytest.raises(EpisodeBagError, match='9 values'):
        writer.write(tmp_path / 'bad', initial=(rgb0, K[:8]))
    with pytest.raises(EpisodeBagError, match='uint8 RGB'):
        writer.write(tmp_path / 'bad', initial=(rgb0.astype(np.float32), K))
    with pytest.raises(EpisodeBagError, match='EpisodeRecord.episode'):
        writer.write(tmp_path / 'bad', initial=(rgb0, K), record={'episode': 'seven'})
    assert list(tmp_path.iterdir()) == []


def test_not_a_bag(tmp_path):
    with pytest.raises(EpisodeBagError, match='not a readable rosbag2'):
        read_episode_bag(tmp_path)
    (tmp_path / 'x.mcap').write_bytes(b'not mcap')
    with pytest.raises(EpisodeBagError, match='not a readable rosbag2'):
        read_episode_bag(tmp_path / 'x.mcap')


def test_msg_dir_lookup(tmp_path, monkeypatch):
    assert (find_msg_dir() / 'EpisodeRecord.msg').is_file()
    with pytest.raises(FileNotFoundError, match='AMENT_PREFIX_PATH'):
        find_msg_dir(tmp_path)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))  # falls back: the venv or the sources
    found = find_msg_dir()
    assert found.parts[-2:] == ('deft_interfaces', 'msg') and not str(found).startswith(
        str(tmp_path))
    assert (found / 'GraspPrior.msg').is_file()


def camera_like_frame(h=240, w=320):
    """Return a frame like a tabletop camera's: a lit table, a box, depth with a NaN border."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([120 + x * 60 // w, 110 + y * 40 // h, np.full((h, w), 90)], axis=2)
    rgb[h // 3:h // 2, w // 3:w // 2] = (200, 40, 40)
    depth = (0.9 - 0.0002 * y).astype(np.float32)
    depth[h // 3:h // 2, w // 3:w // 2] = 0.8
    depth[:, :8] = np.nan
    return Frame(rgb.astype(np.uint8), K, depth, stamp_ns=T0)


def test_bags_have_zstd_chunks_that_every_mcap_reader_reads(tmp_path):
    frame = camera_like_frame()
    sizes = {}
    for compress in (True, False):
        path = EpisodeBagWriter(compress=compress).write(
            tmp_path / str(compress), initial=frame, final=frame, joint_states=JOINTS,
            record=RECORD)
        sizes[compress] = sum(f.stat().st_size for f in path.iterdir())
        got = read_episode_bag(path)  # rosbags, as the player and replay tools read them
        np.testing.assert_array_equal(got.initial_rgb, frame.rgb)
        np.testing.assert_array_equal(got.final_depth, frame.depth)
        assert got.reward == pytest.approx(0.75)
    assert sizes[True] * 10 < sizes[False]
    from mcap.reader import make_reader  # an independent implementation
    (file,) = (tmp_path / 'True').glob('*.mcap')
    with open(file, 'rb') as stream:
        reader = make_reader(stream)
        chunks = reader.get_summary().chunk_indexes
        assert chunks and {c.compression for c in chunks} == {'zstd'}
        topics = [channel.topic for _, channel, _ in reader.iter_messages()]
    writer = EpisodeBagWriter()
    assert topics.count(writer.topic('image')) == 2 and topics.count(writer.topic('depth')) == 2
    assert writer.topic('record') in topics
    meta = yaml.safe_load((tmp_path / 'True' / 'metadata.yaml').read_text())
    assert meta['rosbag2_bagfile_information']['storage_identifier'] == 'mcap'
