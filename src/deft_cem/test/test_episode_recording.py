"""What the episode node keeps of an episode, the records it builds, the I0 and bag it stores."""

import math

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from sensor_msgs.msg import JointState

from deft_cem.episode_recording import (
    EpisodeCapture,
    JointDecimator,
    bag_metadata,
    record_fields,
    store_episode_media,
)
from deft_common.runs import RunSettings, image_path, load_image
from deft_interfaces.msg import EpisodeRecord
from deft_replay.bag_format import Frame
from deft_replay.bag_reader import read_episode_bag
from deft_replay.bag_writer import EpisodeBagWriter, episode_bag_path

NAMES = ['contact_x', 'contact_y', 'wrist_rz']
K = [525.0, 0.0, 31.5, 0.0, 525.0, 23.5, 0.0, 0.0, 1.0]
SETTINGS = RunSettings(task='pick up the cup', object_prompt='the red cup', episodes=4,
                       warmup_episodes=2, elites=1, initial_std=[0.1] * 3, reward_source='sim',
                       optimizer='cem', prior='heuristic', seed=11, parameter_names=NAMES)


def joint(t):
    msg = JointState(name=['j0'], position=[t])
    msg.header.stamp = Time(sec=int(t), nanosec=int(round(t % 1 * 1e9)))
    return msg


def test_joint_states_are_kept_at_the_bag_rate_only_during_an_episode():
    joints = JointDecimator(10.0)
    assert not joints.offer(joint(0.0))  # no episode under way
    joints.start()
    kept = [t for t in np.arange(0.0, 0.5, 0.03) if joints.offer(joint(float(t)))]
    assert kept == pytest.approx([0.0, 0.12, 0.24, 0.36, 0.48])
    joints.stop()
    assert not joints.offer(joint(1.0)) and len(joints.kept) == 5
    joints.start()
    assert joints.kept == [] and joints.offer(joint(0.0))  # a new episode starts afresh
    with pytest.raises(ValueError, match='bag_joint_rate_hz'):
        JointDecimator(0.0)


def test_record_fields_are_plain_and_make_an_episode_record():
    fields = record_fields('r', np.int64(3), 't', np.array([0.1, 0.2, 0.3]),
                           np.array([0.0, -0.5, 1.0], np.float32), NAMES, np.float64(0.25),
                           'sim')
    assert fields == {'run_id': 'r', 'episode': 3, 'task': 't', 'xi': [0.1, 0.2, 0.3],
                      'eps': [0.0, -0.5, 1.0], 'parameter_names': NAMES, 'reward': 0.25,
                      'reward_source': 'sim'}
    assert all(type(v) is float for v in fields['xi'] + fields['eps'] + [fields['reward']])
    msg = EpisodeRecord(**fields)
    assert msg.episode == 3 and list(msg.eps) == [0.0, -0.5, 1.0]


def test_capture_follows_an_episode_and_announces_what_waits():
    capture = EpisodeCapture(NAMES, 10.0)
    nothing = capture.reward_request(None, 4, 't')
    assert nothing['episode'] == -1 and math.isnan(nothing['reward'])
    assert nothing['reward_source'] == '' and 'xi' not in nothing
    EpisodeRecord(**nothing)  # a valid message
    capture.start()
    assert capture.joints.active
    capture.perceived(np.zeros((2, 2, 3), np.uint8), Frame(np.zeros((2, 2, 3), np.uint8)))
    capture.prior = 'prior'
    capture.residual(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, -0.5]))
    waiting = capture.reward_request('r', 4, 'pick')
    assert waiting['xi'] == [1.0, 2.0, 3.0] and waiting['eps'] == [0.5, 0.0, -0.5]
    assert math.isnan(waiting['reward']) and waiting['reward_source'] == 'operator'
    assert (waiting['run_id'], waiting['episode'], waiting['task']) == ('r', 4, 'pick')
    assert math.isnan(capture.reset_request('r', 4, 'pick')['reward'])  # not yet scored
    capture.scored(np.float64(0.75), 'sim', None)
    assert not capture.joints.active and capture.frames['final'] is None
    reset = capture.reset_request('r', 4, 'pick')
    assert (reset['reward'], reset['reward_source'], reset['eps']) == (0.75, 'sim',
                                                                       [0.5, 0.0, -0.5])
    assert capture.reset_request(None, 4, 'pick')['episode'] == -1
    capture.start()  # the next episode forgets this one
    assert capture.current == {} and capture.frames == {} and capture.prior is None
    assert capture.initial_image is None
    assert capture.reward_request('r', 5, 'pick')['xi'] == []


def finished_capture(rgb=None):
    rng = np.random.default_rng(1)
    rgb0 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) if rgb is None else rgb
    rgb1 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    capture = EpisodeCapture(NAMES, 100.0)
    capture.start()
    capture.perceived(rgb0, Frame(rgb0, K, stamp_ns=1_000_000_000))
    for t in (1.0, 1.1, 1.2):
        capture.joints.offer(joint(t))
    capture.residual([0.4, -0.1, 0.3], [0.01, 0.02, 0.03])
    capture.scored(0.6, 'sim', Frame(rgb1, K, stamp_ns=2_000_000_000))
    return capture, rgb0, rgb1


def test_store_episode_media_writes_i0_and_the_bag_replacing_a_stale_one(tmp_path):
    capture, rgb0, rgb1 = finished_capture()
    stale = episode_bag_path(tmp_path, 2)
    stale.mkdir(parents=True)
    (stale / 'left_by_a_crash').write_text('x')
    record = EpisodeRecord(**capture.record('run', 2, 'pick up the cup', [0.4, -0.1, 0.3],
                                            [0.01, 0.02, 0.03], 0.6, 'sim'))
    warnings = []
    bag = store_episode_media(tmp_path, 2, capture, record, bag_metadata(SETTINGS),
                              EpisodeBagWriter(), True, warnings.append)
    assert warnings == [] and bag == str(stale) and record.bag_path == bag
    assert not (stale / 'left_by_a_crash').exists()
    np.testing.assert_array_equal(load_image(image_path(tmp_path, 2)), rgb0)
    read = read_episode_bag(bag)
    np.testing.assert_array_equal(read.initial_rgb, rgb0)
    np.testing.assert_array_equal(read.final_rgb, rgb1)
    assert read.reward == pytest.approx(0.6) and read.eps == pytest.approx([0.01, 0.02, 0.03])
    assert read.record['bag_path'] == bag and len(read.joint_states) == 3
    assert read.metadata['optimizer'] == 'cem' and read.metadata['mode'] == 'fine_tune'
    assert read.metadata['seed'] == 11 and read.metadata['object_prompt'] == 'the red cup'


def test_store_episode_media_failures_are_warnings_and_leave_no_path(tmp_path):
    capture, _, _ = finished_capture(rgb=np.zeros((24, 32), np.uint8))  # not RGB: no I0, no bag
    record = EpisodeRecord(**capture.record('run', 0, 't', [0, 0, 0], [0, 0, 0], 0.1, 'sim'))
    warnings = []
    bag = store_episode_media(tmp_path, 0, capture, record, {}, EpisodeBagWriter(), True,
                              warnings.append)
    assert bag == '' and record.bag_path == ''
    assert warnings[0].startswith('could not store I0 of episode 0: I0 must be an H x W x 3')
    assert warnings[1].startswith('could not write the bag of episode 0: ')
    assert not image_path(tmp_path, 0).exists() and not episode_bag_path(tmp_path, 0).exists()
    # bags off, I0 off: nothing written, nothing to warn about
    good, _, _ = finished_capture()
    assert store_episode_media(tmp_path, 1, good, record, {}, None, False, warnings.append) == ''
    assert len(warnings) == 2 and not image_path(tmp_path, 1).exists()
    assert not episode_bag_path(tmp_path, 1).exists()
