"""The panel's pure parts: progress from feedback and results, elites, the form's parsing."""

import math
from types import SimpleNamespace as Ns

from deft_rqt.model import RunProgress, elite_indices, parse_floats


def test_elites_are_the_best_finite_rewards():
    assert elite_indices([0.2, math.nan, 0.9, 0.5, 0.9], 2) == [2, 4]
    assert elite_indices([0.1], 5) == [0]
    assert elite_indices([], 3) == [] and elite_indices([0.3], 0) == []


def test_fine_tune_feedback_adds_each_finished_reward():
    p = RunProgress(kind='fine_tune', run_id='r')
    p.on_fine_tune_feedback(Ns(episode=0, episodes=3, phase='approach', last_reward=0.0,
                               best_reward=math.nan, std=[0.1]))
    assert p.episode == 1 and p.rewards == [] and 'phase approach' in p.line()
    p.on_fine_tune_feedback(Ns(episode=1, episodes=3, phase='warmup', last_reward=0.4,
                               best_reward=0.4, std=[0.1]))
    p.on_fine_tune_feedback(Ns(episode=2, episodes=3, phase='refit', last_reward=0.6,
                               best_reward=0.6, std=[0.05]))
    assert p.rewards == [0.4, 0.6] and p.std == [0.05]
    assert 'episode 2 of 3' in p.line() and 'best 0.600' in p.line()
    p.finish('succeeded', Ns(message='done', rewards=[0.4, 0.6, 0.5], best_reward=0.6,
                             success=True))
    assert p.rewards == [0.4, 0.6, 0.5] and p.line().endswith('succeeded: done')


def test_run_episode_result_is_its_reward_and_failures_keep_none():
    p = RunProgress(kind='run_episode')
    p.on_run_episode_feedback(Ns(phase='reward', detail='waiting for operator reward'))
    assert 'waiting for operator reward' in p.line()
    p.finish('aborted', Ns(message='no score', success=False, reward=0.0))
    assert p.rewards == [] and 'aborted: no score' in p.line()
    p.finish('rejected', None)
    assert p.status == 'rejected'


def test_parse_floats():
    assert parse_floats('') == [] and parse_floats('0.1, 0.2 3') == [0.1, 0.2, 3.0]
    assert parse_floats('0.1 x') is None
