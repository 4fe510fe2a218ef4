import math

from deft_cem.run_index import list_runs
from deft_common.runs import EpisodeEntry, RunSettings, RunStore


def make_run(root, run_id, done, n=4, rewards=None, stamp0=1000.0):
    store = RunStore(root, run_id)
    store.create(RunSettings(task=f'task {run_id}', object_prompt='', episodes=n,
                             warmup_episodes=1, elites=1, initial_std=[0.1],
                             reward_source='sim', optimizer='cem', prior='affordance', seed=1,
                             parameter_names=['a']))
    for k in range(done):
        reward = rewards[k] if rewards else 0.1 * k
        store.append(EpisodeEntry(episode=k, xi=[0.0], eps=[0.0],
                                  reward=reward, reward_source='sim', stamp=stamp0 + k))
    return store


def test_resumable_runs_newest_first_with_progress_and_best(tmp_path):
    make_run(tmp_path, 'old', 2, rewards=[0.5, 0.25], stamp0=100.0)
    make_run(tmp_path, 'new', 1, rewards=[0.75], stamp0=5000.0)
    make_run(tmp_path, 'done', 4, stamp0=9000.0)           # finished: not resumable
    (tmp_path / 'not a run').mkdir()                       # ignored
    (tmp_path / 'empty').mkdir()                           # no run.json: ignored
    runs, unreadable = list_runs(tmp_path)
    assert [r.run_id for r in runs] == ['new', 'old'] and unreadable == []
    old = runs[1]
    assert (old.episodes_done, old.episodes, old.best_reward) == (2, 4, 0.5)
    assert old.line() == 'old: "task old", 2 of 4 episodes, best reward 0.500'
    everything, _ = list_runs(tmp_path, resumable_only=False)
    assert [r.run_id for r in everything] == ['done', 'new', 'old']


def test_a_run_without_episodes_and_a_broken_run(tmp_path):
    make_run(tmp_path, 'fresh', 0)
    broken = make_run(tmp_path, 'broken', 1)
    (broken.episodes_dir / '000000.json').write_text('{not json')
    runs, unreadable = list_runs(tmp_path)
    assert [r.run_id for r in runs] == ['fresh'] and math.isnan(runs[0].best_reward)
    assert 'no episode yet' in runs[0].line()
    assert len(unreadable) == 1 and unreadable[0].startswith('broken: ')
    assert list_runs(tmp_path / 'missing') == ([], [])
