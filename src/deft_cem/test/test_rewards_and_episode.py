import math

import numpy as np
import pytest

from deft_cem.episode import parse_waypoints, residual, scaled_waypoints
from deft_cem.rewards import OperatorRewardBox


def test_operator_box_accepts_only_the_waiting_episode():
    box = OperatorRewardBox()
    assert box.submit('r', 0, 0.5, False) == (False, 'no episode is waiting for a reward')
    box.expect('run1', 4)
    ok, msg = box.submit('run2', 4, 0.5, False)
    assert not ok and "run 'run2' is not waiting" in msg and "4 of run 'run1'" in msg
    ok, msg = box.submit('run1', 3, 0.5, False)
    assert not ok and 'episode 3 is not waiting' in msg
    ok, msg = box.submit('run1', 4, 1.5, False)
    assert not ok and 'within [0, 1]' in msg
    assert box.poll() is None
    ok, _ = box.submit('run1', -1, 0.75, False)
    assert ok and box.poll().reward == 0.75
    ok, msg = box.submit('run1', 4, 0.1, False)
    assert not ok and msg == "episode 4 of run 'run1' was already scored (reward 0.750)"
    assert box.poll().reward == 0.75  # the first score stands
    box.close()
    assert box.poll() is None and box.waiting_for is None


@pytest.mark.parametrize('reward', [math.nan, math.inf, -0.01, 1.01])
def test_non_finite_or_out_of_range_rewards_are_refused_unless_discarding(reward):
    box = OperatorRewardBox()
    box.expect('run1', 0)
    ok, msg = box.submit('run1', 0, reward, False)
    assert not ok and 'within [0, 1]' in msg and 'discard' in msg
    assert box.poll() is None
    ok, _ = box.submit('run1', 0, reward, True)
    assert ok and box.poll().discard


def test_refusals_name_recorded_episodes_and_unknown_runs(tmp_path):
    from deft_cem.rewards import recorded_rewards
    from deft_common.runs import EpisodeEntry, RunSettings, RunStore

    store = RunStore(tmp_path, 'cup')
    store.create(RunSettings(task='t', object_prompt='', episodes=3, warmup_episodes=1,
                             elites=1, initial_std=[0.1], reward_source='operator',
                             optimizer='cem', prior='affordance', seed=1,
                             parameter_names=['a']))
    for k, r in enumerate([0.25, 0.5]):
        store.append(EpisodeEntry(episode=k, xi=[0.0], eps=[0.0], reward=r,
                                  reward_source='operator', stamp=0.0))
    assert recorded_rewards(tmp_path, 'cup') == [0.25, 0.5]
    assert recorded_rewards(tmp_path, 'nope') is None
    assert recorded_rewards(tmp_path, '../etc') is None

    def history(run_id):
        return recorded_rewards(tmp_path, run_id)

    box = OperatorRewardBox()
    ok, msg = box.submit('cup', 1, 0.9, False, history)
    assert not ok and msg == "episode 1 of run 'cup' was already scored (reward 0.500)"
    ok, msg = box.submit('cup', 2, 0.9, False, history)  # not recorded, nothing waits
    assert not ok and msg == 'no episode is waiting for a reward'
    ok, msg = box.submit('ghost', 0, 0.9, False, history)
    assert not ok and msg.startswith("unknown run 'ghost'") and 'no episode is waiting' in msg
    box.expect('cup', 2)  # while episode 2 waits, the recorded ones still say so
    ok, msg = box.submit('cup', 0, 0.9, False, history)
    assert not ok and 'was already scored (reward 0.250)' in msg
    ok, msg = box.submit('ghost', 0, 0.9, False, history)
    assert not ok and "unknown run 'ghost'" in msg and "episode waiting is 2 of run 'cup'" in msg
    # a one-off episode of a run that has no directory is not "unknown": it waits
    box.expect('oneoff', -1)
    assert box.submit('oneoff', -1, 0.3, False, history)[0]


def test_discard_ignores_the_reward_value():
    box = OperatorRewardBox()
    box.expect('', -1)
    ok, _ = box.submit('', -1, float('nan'), True)
    verdict = box.poll()
    assert ok and verdict.discard and math.isnan(verdict.reward)
    ok, msg = box.submit('', -1, 0.5, False)
    assert not ok and 'already discarded' in msg


def test_reset_gate_confirms_once_and_only_while_waiting():
    from deft_cem.rewards import ResetGate

    gate = ResetGate()
    assert gate.confirm() == (False, 'no episode is waiting for a scene reset')
    gate.expect('cup', 3)
    assert not gate.done()
    ok, msg = gate.confirm()
    assert ok and msg == "scene reset after episode 3 of run 'cup': continuing" and gate.done()
    ok, msg = gate.confirm()
    assert not ok and 'already confirmed' in msg
    gate.close()
    assert not gate.done() and not gate.confirm()[0]
    gate.expect('', -1)
    assert gate.confirm() == (True, 'scene reset after the one-off episode: continuing')


def test_residual_modes():
    std = np.array([0.1, 0.2, 0.0, 1.0])
    rng = np.random.default_rng(0)
    assert not residual('prior', std, rng).any()
    assert not residual('mean', std, rng).any()
    draws = np.array([residual('sample', std, rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.std(axis=0), std, rtol=0.05, atol=1e-12)
    a = residual('sample', std, np.random.default_rng(7))
    b = residual('sample', std, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        residual('policy', std, rng)


def test_waypoints():
    tau = parse_waypoints([0, 0, 0.06, 0.01, 0, 0.12])
    assert tau.shape == (2, 3)
    scaled = scaled_waypoints(tau, 0.5)
    np.testing.assert_allclose(scaled[1], [0.005, 0, 0.06])
    with pytest.raises(ValueError, match='triples'):
        parse_waypoints([0, 0])


def test_demonstration_turns_are_base_axes_turns_of_the_grasp(tmp_path):
    from deft_cem.episode import load_demonstrations, parse_demonstration, waypoint_turn
    from deft_common import rotations

    tau = parse_demonstration([0, 0, 0.1, 0.05, 0, 0.1], [0, 0, 0, 1.2, 0, 0])
    (o0, r0), (o1, r1) = tau.scaled(0.5)
    np.testing.assert_allclose(o1, [0.025, 0, 0.05])
    np.testing.assert_allclose(r1, [0.6, 0, 0])
    assert not r0.any()
    # the arm composes q_grasp * rel: that must equal the base-axes turn R(r) * q_grasp
    grasp = rotations.from_rotvec([0.3, -0.2, 1.0])
    rel = waypoint_turn(grasp, [1.2, 0, 0])
    turned = rotations.multiply(grasp, rel)
    expected = rotations.multiply(rotations.from_rotvec([1.2, 0, 0]), grasp)
    assert rotations.angle_between(turned, expected) < 1e-9
    np.testing.assert_allclose(waypoint_turn(grasp, [0, 0, 0]), [0, 0, 0, 1], atol=1e-12)
    # no turns given: zeros, one per waypoint
    assert parse_demonstration([0, 0, 0.1]).rotations.shape == (1, 3)
    with pytest.raises(ValueError, match='one finite rotation vector'):
        parse_demonstration([0, 0, 0.1, 0, 0, 0.2], [0, 0, 1])
    path = tmp_path / 'demos.yaml'
    path.write_text('Pour It:\n  waypoints: [0, 0, 0.1]\n  rotations: [0, 0.5, 0]\n')
    demos = load_demonstrations(path)
    np.testing.assert_allclose(demos['pour it'].rotations, [[0, 0.5, 0]])
    path.write_text('pour:\n  waypoints: [0, 0]\n')
    with pytest.raises(ValueError, match="task 'pour'.*triples"):
        load_demonstrations(path)
    path.write_text('pour:\n  waypoint: [0, 0, 1]\n')
    with pytest.raises(ValueError, match='needs a mapping with waypoints'):
        load_demonstrations(path)


def test_installed_demonstrations_file_parses():
    from pathlib import Path

    from deft_cem.episode import load_demonstrations

    demos = load_demonstrations(Path(__file__).resolve().parents[1] / 'config' /
                                'demonstrations.yaml')
    assert 'pick up the cup' in demos and demos['pick up the cup'].waypoints[-1][2] > 0.05
