"""The episode node's pure decisions: goal validation, one-off residuals, run prior, joints."""

import math

from builtin_interfaces.msg import Time
import numpy as np
import pytest
from sensor_msgs.msg import JointState

from deft_cem.episode_goals import (
    JointDecimator,
    one_off_residual,
    reward_error,
    run_prior,
    validate_fine_tune_goal,
    validate_run_episode_goal,
)
from deft_cem.runs import RunSettings, RunStore
from deft_interfaces.action import FineTune, RunEpisode


def run_goal(**kw):
    base = dict(task='pick up the cup', mode='prior', reward_source='sim')
    base.update(kw)
    return RunEpisode.Goal(**base)


def check(goal, default='sim', embedding=False, policies=()):
    return validate_run_episode_goal(goal, default, embedding, lambda r: r in policies,
                                     'policy_cvae.pt')


@pytest.mark.parametrize('kw,message', [
    (dict(task='  '), 'task is empty'),
    (dict(mode='dance'), "mode 'dance' is not one of prior, sample, mean, policy"),
    (dict(run_id='../x'), "run_id '../x' is not valid"),
    (dict(mode='policy', run_id='cup'), "no checkpoint 'policy_cvae.pt' for run_id 'cup'"),
    (dict(reward_source='vibes'), "reward_source 'vibes' is not one of"),
    (dict(reward_source='embedding'), 'needs the parameters embedding_weights'),
])
def test_malformed_run_episode_goals_say_why(kw, message):
    error = check(run_goal(**kw))
    assert error is not None and message in error


def test_well_formed_run_episode_goals_pass():
    assert check(run_goal()) is None
    assert check(run_goal(mode='policy', run_id='cup'), policies=('cup',)) is None
    assert check(run_goal(reward_source='embedding'), embedding=True) is None
    # an empty reward_source takes the node default, which is checked the same way
    assert check(run_goal(reward_source=''), default='operator') is None
    assert 'embedding' in check(run_goal(reward_source=''), default='embedding')


@pytest.mark.parametrize('kw,message', [
    (dict(task=''), 'task is empty'),
    (dict(run_id='a b'), "run_id 'a b' is not valid"),
    (dict(resume=True), 'resume: true needs the run_id'),
    (dict(initial_std=[0.1, math.nan]), 'finite and >= 0'),
    (dict(initial_std=[-0.1]), 'finite and >= 0'),
    (dict(reward_source='embedding'), 'embedding_goal_image'),
])
def test_malformed_fine_tune_goals_say_why(kw, message):
    goal = FineTune.Goal(**{'task': 'pick up the cup', **kw})
    error = validate_fine_tune_goal(goal, embedding_ready=False)
    assert error is not None and message in error


def test_well_formed_fine_tune_goals_pass():
    assert validate_fine_tune_goal(FineTune.Goal(task='t'), False) is None
    assert validate_fine_tune_goal(FineTune.Goal(task='t', run_id='r', resume=True,
                                                 reward_source='operator'), False) is None
    assert reward_error('embedding', True) is None and reward_error('sim', False) is None


def test_one_off_residuals():
    std0 = np.array([0.1, 0.2, 0.0])
    rng = np.random.default_rng(0)
    assert not one_off_residual('prior', std0, rng).any()
    assert not one_off_residual('mean', std0, rng).any()
    run = (np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(one_off_residual('mean', std0, rng, run), [1, 2, 3])
    np.testing.assert_allclose(one_off_residual('sample', std0, rng, run), [1, 2, 3])
    np.testing.assert_allclose(one_off_residual('prior', std0, rng, run), [0, 0, 0])
    a = one_off_residual('sample', std0, np.random.default_rng(4))
    b = one_off_residual('sample', std0, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert a[0] != 0 and a[2] == 0


def test_run_prior_is_the_runs_own(tmp_path):
    assert run_prior(tmp_path, '') == ('affordance', None)
    assert run_prior(tmp_path, 'missing') == ('affordance', None)
    RunStore(tmp_path, 'base').create(RunSettings(
        task='t', object_prompt='', episodes=2, warmup_episodes=1, elites=1,
        initial_std=[0.1], reward_source='sim', optimizer='cem', prior='heuristic', seed=42,
        parameter_names=['a']))
    assert run_prior(tmp_path, 'base') == ('heuristic', 42)
    with pytest.raises(ValueError, match='not valid'):
        run_prior(tmp_path, '../x')


def joint(t):
    msg = JointState()
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
