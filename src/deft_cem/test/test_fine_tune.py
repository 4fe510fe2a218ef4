import math

import numpy as np
import pytest

from deft_cem.fine_tune import FineTuneError, FineTuneRequest, FineTuneRun, resolve

NAMES = ['contact_x', 'contact_y', 'wrist_rz']
STD = [0.02, 0.02, 0.2]


def open_run(root, **kw):
    return FineTuneRun.open(root, FineTuneRequest(**kw), STD, 3, 'sim', NAMES)


def reward_of(eps):
    return float(math.exp(-np.sum((np.asarray(eps) / np.asarray(STD) - 0.5) ** 2)))


def test_defaults_are_the_papers():
    s = resolve(FineTuneRequest(task='pick up the cup'), STD, 3, 'sim', NAMES)
    assert (s.episodes, s.warmup_episodes, s.elites) == (30, 10, 3)
    assert s.optimizer == 'cem' and s.prior == 'affordance' and s.reward_source == 'sim'
    assert s.initial_std == STD and 0 <= s.seed < 2**31


@pytest.mark.parametrize('kw,match', [
    (dict(task=''), 'task is empty'),
    (dict(task='t', episodes=5, warmup_episodes=6), 'warmup_episodes'),
    (dict(task='t', episodes=5, elites=6), 'elites'),
    (dict(task='t', initial_std=[1.0]), 'initial_std has 1 values'),
    (dict(task='t', initial_std=[1.0, -1.0, 0.0]), 'finite and >= 0'),
    (dict(task='t', optimizer='adam'), "optimizer 'adam'"),
    (dict(task='t', prior='oracle'), "prior 'oracle'"),
])
def test_bad_goals(kw, match):
    with pytest.raises(FineTuneError, match=match) as info:
        resolve(FineTuneRequest(**kw), STD, 3, 'sim', NAMES)
    assert info.value.reason == 'BAD_GOAL'


def run_episodes(run, count):
    for _ in range(count):
        eps = run.ask()
        run.record(xi=[0.5, 0.0, 0.0], eps=eps, reward=reward_of(eps), reward_source='sim')


@pytest.mark.parametrize('optimizer', ['cem', 'cmaes'])
def test_resume_continues_exactly_where_it_stopped(tmp_path, optimizer):
    straight = open_run(tmp_path / 'a', task='t', run_id='r', episodes=12, warmup_episodes=4,
                        seed=7, optimizer=optimizer)
    run_episodes(straight, 12)
    assert straight.done

    first = open_run(tmp_path / 'b', task='t', run_id='r', episodes=12, warmup_episodes=4,
                     seed=7, optimizer=optimizer)
    run_episodes(first, 5)
    first.ask()  # the process dies mid-episode 5: asked, never recorded
    resumed = open_run(tmp_path / 'b', task='t', run_id='r', resume=True)
    assert resumed.next_episode == 5
    run_episodes(resumed, 7)
    assert resumed.rewards == straight.rewards
    np.testing.assert_allclose(resumed.optimizer.std, straight.optimizer.std)


def test_run_exists_not_found_and_conflicts(tmp_path):
    open_run(tmp_path, task='t', run_id='r', seed=1)
    with pytest.raises(FineTuneError, match='already exists') as info:
        open_run(tmp_path, task='t', run_id='r')
    assert info.value.reason == 'RUN_EXISTS'
    with pytest.raises(FineTuneError, match='not found') as info:
        open_run(tmp_path, task='t', run_id='other', resume=True)
    assert info.value.reason == 'RUN_NOT_FOUND'
    with pytest.raises(FineTuneError, match='other elites, seed'):
        open_run(tmp_path, task='t', run_id='r', resume=True, elites=2, seed=9)
    with pytest.raises(FineTuneError, match='not valid'):
        open_run(tmp_path, task='t', run_id='../escape')


def test_record_after_the_last_episode_is_refused(tmp_path):
    run = open_run(tmp_path, task='t', run_id='r', episodes=2, warmup_episodes=1, elites=1)
    run_episodes(run, 2)
    with pytest.raises(ValueError, match='already has all its episodes'):
        run.record([0, 0, 0], run.ask(), 0.5, 'sim')
    assert run.best_reward == max(run.rewards)
