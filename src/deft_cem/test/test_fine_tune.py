import json
import math

import numpy as np
import pytest

from deft_cem.fine_tune import (
    FineTuneError,
    FineTuneRequest,
    FineTuneRun,
    load_distribution,
    resolve,
)

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


def test_the_reward_sources_task_verdict_is_stored_with_the_episode(tmp_path):
    run = open_run(tmp_path, task='t', run_id='r', episodes=3, warmup_episodes=1, elites=1)
    run.record([0, 0, 0], run.ask(), 0.9, 'sim', task_success=True)
    run.record([0, 0, 0], run.ask(), 0.4, 'sim', task_success=False)
    run.record([0, 0, 0], run.ask(), 0.7, 'operator')  # a person's score has no verdict
    loaded = open_run(tmp_path, task='t', run_id='r', resume=True).store.episodes()
    assert [e.task_success for e in loaded] == [True, False, None]


# --- resuming from the stored optimiser state ------------------------------------------------
def straight_asks(root, optimizer, count=8):
    run = open_run(root, task='t', run_id='r', episodes=count, warmup_episodes=3, elites=2,
                   seed=7, optimizer=optimizer)
    asks = []
    for _ in range(count):
        asks.append(run.ask())
        run.record(xi=[0.5, 0.0, 0.0], eps=asks[-1], reward=reward_of(asks[-1]),
                   reward_source='sim')
    return run, asks


def started(root, optimizer, k, count=8):
    run = open_run(root, task='t', run_id='r', episodes=count, warmup_episodes=3, elites=2,
                   seed=7, optimizer=optimizer)
    run_episodes(run, k)
    return run


@pytest.mark.parametrize('optimizer', ['cem', 'cmaes'])
def test_resumed_after_any_k_episodes_the_next_eps_is_the_uninterrupted_runs(tmp_path, optimizer):
    straight, asks = straight_asks(tmp_path / 'straight', optimizer)
    for k in range(9):
        first = started(tmp_path / str(k), optimizer, k)
        assert all(e.optimizer_state['told'] == i + 1 for i, e in enumerate(first.entries))
        resumed = open_run(tmp_path / str(k), task='t', run_id='r', resume=True)
        assert resumed.warnings == [] and resumed.next_episode == k
        if k < 8:
            np.testing.assert_array_equal(resumed.ask(), asks[k])
        else:
            assert resumed.done
            np.testing.assert_array_equal(resumed.optimizer.std, straight.optimizer.std)


def other_streams(monkeypatch):
    """Make freshly seeded generators draw other numbers (as a numpy/cmaes upgrade might)."""
    real_rng, real_state = np.random.default_rng, np.random.RandomState

    class ShiftedRandomState(real_state):  # what cmaes draws from
        def __init__(self, seed=None):
            super().__init__(None if seed is None else seed + 1)

    monkeypatch.setattr(np.random, 'default_rng',  # what CEM draws from
                        lambda seed=None: real_rng(None if seed is None else seed + 1))
    monkeypatch.setattr(np.random, 'RandomState', ShiftedRandomState)


@pytest.mark.parametrize('optimizer', ['cem', 'cmaes'])
def test_a_run_whose_replay_disagrees_resumes_from_the_stored_state(tmp_path, optimizer,
                                                                     monkeypatch, caplog):
    _, asks = straight_asks(tmp_path / 'straight', optimizer)
    started(tmp_path / 'b', optimizer, 5)
    other_streams(monkeypatch)
    resumed = open_run(tmp_path / 'b', task='t', run_id='r', resume=True)
    assert len(resumed.warnings) == 1 and 'disagrees with the optimiser state stored with ' \
        'episode 4' in resumed.warnings[0]
    assert 'resuming from the stored state' in caplog.text
    np.testing.assert_array_equal(resumed.ask(), asks[5])
    run_episodes(resumed, 3)
    assert resumed.done and resumed.entries[7].optimizer_state['told'] == 8
    # the same run without stored states (an older run) cannot be rebuilt under other streams
    strip_states(tmp_path / 'b' / 'r')
    with pytest.raises(FineTuneError, match='does not match') as info:
        open_run(tmp_path / 'b', task='t', run_id='r', resume=True)
    assert info.value.reason == 'BAD_GOAL'


def test_a_tampered_rng_state_is_what_the_run_continues_with(tmp_path):
    first = started(tmp_path, 'cem', 5)
    path = first.store.episodes_dir / '000004.json'
    record = json.loads(path.read_text())
    record['optimizer_state']['rng'] = np.random.default_rng(777).bit_generator.state
    path.write_text(json.dumps(record))
    resumed = open_run(tmp_path, task='t', run_id='r', resume=True)
    assert 'next eps differs' in resumed.warnings[0]
    mean, std = first.optimizer.mean, first.optimizer.std
    expected = mean + std * np.random.default_rng(777).standard_normal(3)
    np.testing.assert_allclose(resumed.ask(), expected, rtol=0, atol=1e-15)


def strip_states(run_dir, keep_last=False):
    paths = sorted((run_dir / 'episodes').glob('*.json'))
    for path in paths[:-1] if keep_last else paths:
        record = json.loads(path.read_text())
        del record['optimizer_state']
        path.write_text(json.dumps(record))


@pytest.mark.parametrize('keep_last', [False, True])
def test_runs_without_stored_states_resume_by_replay(tmp_path, keep_last):
    _, asks = straight_asks(tmp_path / 'straight', 'cmaes')
    started(tmp_path / 'old', 'cmaes', 6)
    strip_states(tmp_path / 'old' / 'r', keep_last)
    resumed = open_run(tmp_path / 'old', task='t', run_id='r', resume=True)
    assert resumed.warnings == []
    np.testing.assert_array_equal(resumed.ask(), asks[6])
    np.testing.assert_array_equal(load_distribution(tmp_path / 'old', 'r')[1],
                                  resumed.optimizer.std)


def test_an_unloadable_state_falls_back_to_replay(tmp_path):
    _, asks = straight_asks(tmp_path / 'straight', 'cem')
    first = started(tmp_path / 'b', 'cem', 4)
    path = first.store.episodes_dir / '000003.json'
    record = json.loads(path.read_text())
    record['optimizer_state']['format'] = 99
    path.write_text(json.dumps(record))
    resumed = open_run(tmp_path / 'b', task='t', run_id='r', resume=True)
    assert 'has format 99' in resumed.warnings[0] and 'replaying the 4' in resumed.warnings[0]
    np.testing.assert_array_equal(resumed.ask(), asks[4])


def test_a_failed_write_leaves_the_run_waiting_for_the_same_episode(tmp_path, monkeypatch):
    run = started(tmp_path, 'cem', 3)
    eps, mean = run.ask(), run.optimizer.mean

    def full(entry):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(run.store, 'append', full)
    with pytest.raises(OSError, match='No space'):
        run.record([0, 0, 0], eps, 0.9, 'sim')
    assert run.next_episode == 3 and len(run.optimizer.history) == 3
    np.testing.assert_array_equal(run.ask(), eps)
    np.testing.assert_array_equal(run.optimizer.mean, mean)
    with pytest.raises(ValueError, match='last ask'):  # nothing is written for a wrong eps
        run.record([0, 0, 0], eps + 1, 0.9, 'sim')


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize('kw,match', [
    (dict(reward_source='vibes'), "reward_source 'vibes' is not one of operator, embedding, sim"),
    (dict(episodes=10, warmup_episodes=3, elites=4), r'elites \(E=4\) must be <= warmup_episodes'),
])
def test_more_bad_goals(kw, match):
    with pytest.raises(FineTuneError, match=match) as info:
        resolve(FineTuneRequest(task='t', **kw), STD, 3, 'sim', NAMES)
    assert info.value.reason == 'BAD_GOAL'


def test_default_elites_never_exceed_the_warmup():
    s = resolve(FineTuneRequest(task='t', episodes=10, warmup_episodes=2), STD, 5, 'sim', NAMES)
    assert (s.warmup_episodes, s.elites) == (2, 2)


def test_resume_validates_requested_and_stored_settings(tmp_path):
    open_run(tmp_path, task='t', run_id='r', seed=1)
    with pytest.raises(FineTuneError, match="optimizer 'adam' is not one of cem, cmaes"):
        open_run(tmp_path, task='t', run_id='r', resume=True, optimizer='adam')
    with pytest.raises(FineTuneError, match="prior 'oracle' is not one of"):
        open_run(tmp_path, task='t', run_id='r', resume=True, prior='oracle')
    run_json = tmp_path / 'r' / 'run.json'
    good = json.loads(run_json.read_text())
    run_json.write_text(json.dumps(dict(good, reward_source='vibes')))
    with pytest.raises(FineTuneError, match="run 'r' cannot be resumed: reward_source 'vibes'"):
        open_run(tmp_path, task='t', run_id='r', resume=True)
    run_json.write_text(json.dumps(dict(good, parameter_names=['a', 'b', 'c'])))
    with pytest.raises(FineTuneError, match='another hand configuration') as info:
        open_run(tmp_path, task='t', run_id='r', resume=True)
    assert info.value.reason == 'BAD_GOAL'


@pytest.mark.parametrize('resume', [False, True])
def test_an_unusable_run_root_is_a_bad_goal_naming_it(tmp_path, resume):
    root = tmp_path / 'runs'
    root.write_text('a file, not a directory')
    if resume:  # a run with an episode record that cannot be read
        root = tmp_path / 'ok'
        open_run(root, task='t', run_id='r', seed=1)
        (root / 'r' / 'episodes' / '000000.json').mkdir()
        with pytest.raises(FineTuneError, match='IsADirectoryError') as info:
            open_run(root, task='t', run_id='r', resume=True)
        assert str(root / 'r') in str(info.value)
    else:
        with pytest.raises(FineTuneError, match='NotADirectoryError') as info:
            open_run(root, task='t', run_id='r')
        assert str(root) in str(info.value)
    assert info.value.reason == 'BAD_GOAL'
