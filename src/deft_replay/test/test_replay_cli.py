import json
import logging
import math
import sys
import types

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.stats import spearmanr

from deft_replay.bag_format import Frame
from deft_replay.bag_writer import EpisodeBagWriter, episode_bag_path
from deft_replay.replay_cli import METRICS_JSON, METRICS_PNG, find_bags, main, spearman

W, H = 80, 60
K = [80.0, 0.0, 40.0, 0.0, 80.0, 30.0, 0.0, 0.0, 1.0]
TABLE, TOP = 0.8, 0.75
SHIFTS = [0, 2, 4, 6, 8, 10]  # pixels the object moves during each episode


def scene(u0):
    """Return (rgb, depth) of a 20 x 20 px box on a table seen from above, its left edge at u0."""
    depth = np.full((H, W), TABLE, np.float32)
    depth[20:40, u0:u0 + 20] = TOP
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[20:40, u0:u0 + 20] = (200, 30, 30)
    return rgb, depth


def write_run(root, rewards, run_id='run1', shifts=SHIFTS):
    writer = EpisodeBagWriter()
    for k, (shift, reward) in enumerate(zip(shifts, rewards)):
        rgb0, depth0 = scene(20)
        rgb1, depth1 = scene(20 + shift)
        writer.write(episode_bag_path(root / run_id, k),
                     initial=Frame(rgb0, K, depth0, stamp_ns=10**9 * (k + 1)),
                     final=Frame(rgb1, K, depth1, stamp_ns=10**9 * (k + 1) + 5 * 10**8),
                     prior={'contact_pixels': [29.5 + 3.0, 29.5 + 4.0]},  # 5 px off centre
                     record={'run_id': run_id, 'episode': k, 'reward': reward,
                             'reward_source': 'operator', 'xi': [0.0], 'eps': [0.1 * k]})
    return root / run_id


def foreign_bag(path):
    store = get_typestore(Stores.ROS2_KILTED)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        msg = store.types['std_msgs/msg/String'](data='hello')
        writer.write(conn, 1, store.serialize_cdr(msg, 'std_msgs/msg/String'))
    return path


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_monotone_rewards_give_rank_correlation_one(tmp_path, capsys, caplog):
    rewards = [0.1 + 0.08 * s for s in SHIFTS]  # the operator scored how far it moved
    run = write_run(tmp_path, rewards)
    foreign_bag(run / 'bags' / 'zz_other_robot')
    out_dir = tmp_path / 'eval'
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli([run, '--out', out_dir], capsys)
    assert code == 0, err
    assert 'spearman(object_shift_m, recorded reward) over 6 episodes: 1.000' in out
    assert '6 episodes, 6 re-segmented, 1 bag(s) skipped' in out
    assert 'not an episode topic' in caplog.text and 'no episode record' in caplog.text
    doc = json.loads((out_dir / METRICS_JSON).read_text())
    assert doc['metrics']['spearman']['object_shift_m']['rho'] == pytest.approx(1.0)
    assert doc['metrics']['segmented'] == 6
    assert doc['metrics']['prior_shift_px_mean'] == pytest.approx(5.0)
    rows = doc['episodes']
    assert [r['episode'] for r in rows] == list(range(6))
    assert [r['reward'] for r in rows] == pytest.approx(rewards)
    expected = [s * TOP / K[0] for s in SHIFTS]  # pixels at the box top -> metres
    assert [r['object_shift_m'] for r in rows] == pytest.approx(expected, abs=1e-6)
    assert [(r['centroid_u'], r['centroid_v']) for r in rows] == [(29.5, 29.5)] * 6
    assert (out_dir / METRICS_PNG).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_shuffled_rewards_correlate_less(tmp_path, capsys):
    rewards = [0.5, 0.1, 0.9, 0.3, 0.2, 0.6]
    run = write_run(tmp_path, rewards)
    code, out, err = run_cli([run / 'bags', '--out', tmp_path / 'e', '--no-plot', '--quiet'],
                             capsys)
    assert code == 0, err
    rho = json.loads((tmp_path / 'e' / METRICS_JSON).read_text())[
        'metrics']['spearman']['object_shift_m']['rho']
    assert rho == pytest.approx(spearmanr(SHIFTS, rewards).statistic)
    assert rho < 0.5
    assert not (tmp_path / 'e' / METRICS_PNG).exists()
    assert 'run1' not in out  # --quiet: no table


class FakeEmbedding:
    """Stands in for EmbeddingReward: the reward falls with the box's distance from u0 = 40."""

    calls = []

    @classmethod
    def from_config(cls, encoder, weights_path, goal_image_path=None, device='cpu', *, scale,
                    allow_random=False):
        cls.calls.append((encoder, weights_path, goal_image_path, scale))
        return cls()

    def score(self, image):
        red = np.nonzero((image[..., 0] == 200).any(axis=0))[0]
        distance = abs(float(red.min()) - 40.0)
        return types.SimpleNamespace(reward=math.exp(-distance / 20.0), distance=distance)


@pytest.mark.parametrize('shuffle', [False, True])
def test_embedding_reward_ranks_against_the_recorded_one(tmp_path, capsys, monkeypatch,
                                                         shuffle):
    fake = types.ModuleType('deft_affordance.embedding_reward')
    fake.EmbeddingReward = FakeEmbedding
    monkeypatch.setitem(sys.modules, 'deft_affordance.embedding_reward', fake)  # no torch here
    recomputed = [math.exp(-abs(20 + s - 40) / 20.0) for s in SHIFTS]
    recorded = [3.0 * r - 1.0 for r in recomputed]  # a monotone function of the recomputed one
    if shuffle:
        recorded = recorded[3:] + recorded[:3]
    run = write_run(tmp_path, recorded)
    code, out, err = run_cli([run, '--out', tmp_path / 'e', '--no-plot', '--embedding-weights',
                              'w.pt', '--goal-image', 'goal.png', '--encoder', 'r3m',
                              '--embedding-scale', '7'], capsys)
    assert code == 0, err
    assert FakeEmbedding.calls[-1] == ('r3m', 'w.pt', 'goal.png', 7.0)
    doc = json.loads((tmp_path / 'e' / METRICS_JSON).read_text())
    assert [r['embedding_reward'] for r in doc['episodes']] == pytest.approx(recomputed)
    rho = doc['metrics']['spearman']['embedding_reward']['rho']
    assert rho == pytest.approx(spearmanr(recomputed, recorded).statistic)
    assert (rho < 0.5) if shuffle else (rho == pytest.approx(1.0))
    assert 'spearman(embedding_reward, recorded reward)' in out


def test_embedding_reward_with_real_weights(tmp_path, capsys):
    torch = pytest.importorskip('torch')
    from PIL import Image

    from deft_affordance.encoders import build_trunk

    weights = tmp_path / 'resnet18.pt'
    torch.manual_seed(0)
    torch.save(build_trunk('resnet18').state_dict(), weights)
    goal = tmp_path / 'goal.png'
    Image.fromarray(scene(20 + 4)[0]).save(goal)  # the final frame of the first episode
    run = write_run(tmp_path, [0.9], shifts=[4])  # one: about 1 s per image on these CPUs
    code, out, err = run_cli([run, '--out', tmp_path / 'e', '--no-plot', '--embedding-weights',
                              weights, '--goal-image', goal], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / 'e' / METRICS_JSON).read_text())['episodes']
    assert rows[0]['embedding_distance'] == 0.0 and rows[0]['embedding_reward'] == 1.0
    assert 'n/a (fewer than 3 episodes with both values)' in out


def test_prompt_outside_a_recorded_image_is_noted_per_episode(tmp_path, capsys):
    run = write_run(tmp_path, [0.1 * k for k in range(6)])
    code, out, err = run_cli([run, '--prompt', 'point: 500, 5', '--out', tmp_path / 'e',
                              '--no-plot'], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / 'e' / METRICS_JSON).read_text())
    assert all('outside the 80x60 image' in r['segmentation'] for r in doc['episodes'])
    assert doc['metrics']['spearman']['object_shift_m']['rho'] is None
    assert '0 re-segmented' in out


def test_find_bags(tmp_path):
    run = write_run(tmp_path, [0.1] * 6)
    (run / 'bags' / '.000009.tmp').mkdir()  # a bag being written is not a bag yet
    bags = find_bags([run, run / 'bags' / '000001', tmp_path])
    assert [b.name for b in bags] == [f'{k:06d}' for k in range(6)]
    mcap = run / 'bags' / '000002' / '000002.mcap'
    assert find_bags([mcap]) == [mcap]


def test_spearman_edge_cases():
    assert spearman([1.0, 2.0], [1.0, 2.0])['rho'] is None
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])['note'] == 'one of the two is constant'
    result = spearman([1.0, float('nan'), 2.0, 3.0, 4.0], [1.0, 9.0, 2.0, 3.0, 5.0])
    assert result['n'] == 4 and result['rho'] == pytest.approx(1.0)


@pytest.mark.parametrize('case,match', [
    ('missing', 'does not exist'),
    ('text_file', 'neither a rosbag2 directory'),
    ('empty_dir', 'no episode bags in'),
    ('only_foreign', 'none of the 1 bag(s) holds an episode record'),
    ('weights_alone', '--embedding-weights and --goal-image go together'),
    ('bad_weights', 'cannot be loaded with weights_only=True'),
    ('label_prompt', 'not a label'),
    ('prompt_syntax', 'point prompt needs 2 numbers'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, match):
    run = write_run(tmp_path, [0.1 * k for k in range(6)]) if case in (
        'bad_weights', 'prompt_syntax') else tmp_path
    args = {
        'missing': [tmp_path / 'nope'],
        'text_file': [tmp_path / 'notes.txt'],
        'empty_dir': [tmp_path / 'empty'],
        'only_foreign': [tmp_path / 'foreign'],
        'weights_alone': [tmp_path, '--embedding-weights', tmp_path / 'w.pt'],
        'bad_weights': [run, '--embedding-weights', tmp_path / 'w.pt', '--goal-image',
                        tmp_path / 'goal.png'],
        'label_prompt': [tmp_path, '--prompt', 'label: cup'],
        'prompt_syntax': [run, '--prompt', 'point: 5'],
    }[case]
    (tmp_path / 'notes.txt').write_text('hello')
    (tmp_path / 'empty').mkdir()
    foreign_bag(tmp_path / 'foreign')
    (tmp_path / 'w.pt').write_bytes(b'garbage')
    from PIL import Image
    Image.fromarray(scene(20)[0]).save(tmp_path / 'goal.png')
    code, out, err = run_cli(args + ['--out', tmp_path / 'e'], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('deft_replay_eval: error: '), err
    assert match in lines[0]
    assert not (tmp_path / 'e').exists()
