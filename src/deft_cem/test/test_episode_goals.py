"""The episode node's pure decisions: goal validation, opening a run, one-off priors/residuals."""

import math

import numpy as np
import pytest

from deft_cem.episode_goals import (
    fine_tune_request,
    one_off_residual,
    open_fine_tune_run,
    reward_error,
    run_distribution,
    run_prior,
    scene_seed,
    validate_fine_tune_goal,
    validate_run_episode_goal,
)
from deft_cem.fine_tune import FineTuneRequest
from deft_common.runs import RunSettings, RunStore
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
    (dict(initial_std=[0.1, math.nan]), 'must be > 0 and <= 3'),
    (dict(initial_std=[-0.1]), 'must be > 0 and <= 3'),
    (dict(initial_std=[0.1, 0.0]), 'must be > 0 and <= 3'),  # the .action says > 0
    (dict(initial_std=[1e300]), 'must be > 0 and <= 3'),
    (dict(episodes=2_000_000_000), 'episodes is 2000000000; it must lie in 0..1000'),
    (dict(episodes=-1), 'episodes is -1'),
    (dict(warmup_episodes=5000), 'warmup_episodes is 5000'),
    (dict(elites=-3), 'elites is -3'),
    (dict(task='x' * 1001), 'task is 1001 characters long; at most 1000'),
    (dict(object_prompt='p' * 5000), 'object_prompt is 5000 characters long'),
    (dict(reward_source='embedding'), 'embedding_goal_image'),
])
def test_malformed_fine_tune_goals_say_why(kw, message):
    goal = FineTune.Goal(**{'task': 'pick up the cup', **kw})
    error = validate_fine_tune_goal(goal, embedding_ready=False)
    assert error is not None and message in error


def test_a_long_run_id_is_not_echoed_whole():
    goal = FineTune.Goal(task='t', run_id='r' * 100_000 + ' ')
    error = validate_fine_tune_goal(goal, embedding_ready=False)
    assert 'is not valid' in error and '(100001 characters)' in error and len(error) < 300
    error = check(run_goal(mode='m' * 100_000))
    assert '(100000 characters)' in error and len(error) < 300


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


NAMES, STD0 = ['a', 'b'], [0.1, 0.2]


def open_goal(root, embedding=False, **kw):
    goal = FineTune.Goal(**{'task': 'pick up the cup', **kw})
    return open_fine_tune_run(root, goal, STD0, 5, 'sim', NAMES, embedding)


def test_fine_tune_request_carries_every_goal_field():
    goal = FineTune.Goal(task='t', object_prompt='p', episodes=6, warmup_episodes=3, elites=2,
                         initial_std=[0.1, 0.2], reward_source='operator', optimizer='cmaes',
                         prior='heuristic', run_id='r', resume=True, seed=7)
    assert fine_tune_request(goal) == FineTuneRequest(
        task='t', object_prompt='p', episodes=6, warmup_episodes=3, elites=2,
        initial_std=[0.1, 0.2], reward_source='operator', optimizer='cmaes', prior='heuristic',
        run_id='r', resume=True, seed=7)


def test_open_fine_tune_run_creates_resumes_and_refuses_with_the_reason(tmp_path):
    run, reason, why = open_goal(tmp_path, run_id='r', episodes=4, warmup_episodes=2,
                                 elites=2, seed=3)
    assert (reason, why) == ('', '') and run.next_episode == 0
    assert run.settings.initial_std == STD0 and run.settings.reward_source == 'sim'
    run.record([0.0, 0.0], run.ask(), 0.5, 'sim')
    again, reason, why = open_goal(tmp_path, run_id='r')
    assert again is None and reason == 'RUN_EXISTS' and 'set resume: true' in why
    resumed, reason, _ = open_goal(tmp_path, run_id='r', resume=True)
    assert reason == '' and resumed.next_episode == 1
    np.testing.assert_allclose(resumed.ask(), run.ask())  # the same distribution
    ghost, reason, why = open_goal(tmp_path, run_id='ghost', resume=True)
    assert ghost is None and reason == 'RUN_NOT_FOUND' and "run 'ghost' not found" in why
    _, reason, why = open_goal(tmp_path, run_id='bad', episodes=4, warmup_episodes=2, elites=3)
    assert reason == 'BAD_GOAL' and 'elites (E=3) must be <= warmup_episodes (M=2)' in why
    _, reason, why = open_goal(tmp_path, run_id='emb', reward_source='embedding', episodes=2,
                               warmup_episodes=1, elites=1)
    assert reason == 'BAD_GOAL' and "run 'emb' uses reward_source 'embedding'" in why
    assert 'embedding_weights' in why
    assert open_goal(tmp_path, True, run_id='emb', resume=True)[1] == ''  # a node that has it
    (tmp_path / 'file').write_text('not a directory')
    _, reason, why = open_goal(tmp_path / 'file', run_id='x')
    assert reason == 'BAD_GOAL' and str(tmp_path / 'file') in why


def test_run_distribution_of_a_one_off_episode(tmp_path):
    assert run_distribution(tmp_path, 'sample', '') is None
    assert run_distribution(tmp_path, 'sample', 'not-yet') is None
    run, _, _ = open_goal(tmp_path, run_id='r', episodes=4, warmup_episodes=1, elites=1, seed=3)
    assert run_distribution(tmp_path, 'prior', 'r') is None
    mean, std = run_distribution(tmp_path, 'mean', 'r')
    np.testing.assert_allclose(mean, [0.0, 0.0])
    np.testing.assert_allclose(std, STD0)
    run.record([0.0, 0.0], run.ask(), 0.9, 'sim')  # M = 1: refitted to this episode
    mean, std = run_distribution(tmp_path, 'sample', 'r')
    np.testing.assert_allclose(mean, run.optimizer.mean)
    np.testing.assert_allclose(std, run.optimizer.std)
    assert not np.allclose(mean, 0.0)


def test_every_episode_of_a_run_has_its_own_reproducible_configuration():
    seeds = [scene_seed(7, k) for k in range(200)]
    assert len(set(seeds)) == 200 and all(0 <= s < 2**31 for s in seeds)
    assert seeds == [scene_seed(7, k) for k in range(200)]  # a resumed run sees the same ones
    assert set(seeds).isdisjoint(scene_seed(8, k) for k in range(200))
    assert scene_seed(-1, 3) != scene_seed(1, 3)  # negative run seeds are valid and distinct
