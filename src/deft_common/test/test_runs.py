import json
import os
import subprocess
import sys
import textwrap

import pytest

from deft_common.runs import (
    EpisodeEntry,
    RunSettings,
    RunStore,
    atomic_write,
    check_run_id,
    history,
)


def settings(**kw):
    base = dict(task='pick up the cup', object_prompt='', episodes=30, warmup_episodes=10,
                elites=5, initial_std=[0.1, 0.2], reward_source='sim', optimizer='cem',
                prior='affordance', seed=4, parameter_names=['a', 'b'])
    base.update(kw)
    return RunSettings(**base)


def entry(k, reward=0.5):
    return EpisodeEntry(episode=k, xi=[1.0, 2.0], eps=[0.1 * k, -0.1], reward=reward,
                        reward_source='sim', stamp=1.0)


def test_create_append_and_reload(tmp_path):
    store = RunStore(tmp_path, 'run-1')
    assert not store.exists
    store.create(settings())
    with pytest.raises(FileExistsError):
        store.create(settings())
    for k in range(3):
        store.append(entry(k, reward=k / 10))
    again = RunStore(tmp_path, 'run-1')
    assert again.settings().conflicts(settings()) == []
    loaded = again.episodes()
    assert [e.episode for e in loaded] == [0, 1, 2]
    assert history(loaded)[2] == ([0.2, -0.1], 0.2)


def test_no_duplicates_no_gaps_no_nan(tmp_path):
    store = RunStore(tmp_path, 'r')
    store.create(settings())
    store.append(entry(0))
    with pytest.raises(ValueError, match='cannot follow 1'):
        store.append(entry(0))
    with pytest.raises(ValueError, match='cannot follow 1'):
        store.append(entry(2))
    with pytest.raises(ValueError, match='not finite'):
        store.append(entry(1, reward=float('nan')))
    (store.episodes_dir / '000005.json').write_text(json.dumps(entry(5).__dict__))
    with pytest.raises(ValueError, match='gaps'):
        store.episodes()


def test_conflicting_settings_are_named():
    assert settings().conflicts(settings(elites=3, seed=1)) == ['elites', 'seed']


@pytest.mark.parametrize('bad', ['', '../x', 'a b', '.hidden', 'x' * 200])
def test_run_ids_are_checked(bad):
    with pytest.raises(ValueError, match='not valid'):
        check_run_id(bad)


def test_missing_run_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="run 'nope' not found"):
        RunStore(tmp_path, 'nope').settings()
    store = RunStore(tmp_path, 'bad')
    store.create(settings())
    (store.episodes_dir / '000000.json').write_text('{"episode": 0')
    with pytest.raises(ValueError, match='not an episode record'):
        store.episodes()


def test_a_killed_writer_leaves_all_or_nothing(tmp_path):
    """SIGKILL a process in the middle of writing: the target is absent or complete."""
    target = tmp_path / 'big.json'
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = {sys.path!r}
        import deft_common.runs as runs
        real = os.replace
        def die(*a):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace = die
        runs.atomic_write(runs.Path({str(target)!r}), 'x' * 10_000_000)
    """)
    proc = subprocess.run([sys.executable, '-c', script], timeout=60)
    assert proc.returncode == -9
    assert not target.exists()
    atomic_write(target, 'done')
    assert target.read_text() == 'done'
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == '.tmp']
    assert all(p.name.startswith('.big.json') for p in leftovers)
    assert os.path.getsize(target) == 4


def test_episode_records_carry_the_optimizer_state_and_older_ones_load_without(tmp_path):
    store = RunStore(tmp_path, 'r')
    store.create(settings())
    state = {'kind': 'cem', 'told': 1, 'mean': [0.0, 1.0], 'rng': {'state': 2**127 + 3}}
    store.append(EpisodeEntry(episode=0, xi=[1.0, 2.0], eps=[0.1, 0.2], reward=0.5,
                              reward_source='sim', stamp=1.0, optimizer_state=state))
    old = {k: v for k, v in entry(1).__dict__.items() if k != 'optimizer_state'}
    (store.episodes_dir / '000001.json').write_text(json.dumps(old))  # written before states
    loaded = store.episodes()
    assert loaded[0].optimizer_state == state and loaded[1].optimizer_state is None


@pytest.mark.parametrize('mask', [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask_like_open(tmp_path, mask):
    from deft_common.runs import process_umask
    old = os.umask(mask)
    try:
        assert process_umask() == mask
        atomic_write(tmp_path / 'a.json', '{}')
        atomic_write(tmp_path / 'b.png', lambda f: f.write(b'png'))
        with open(tmp_path / 'c.txt', 'w') as f:  # what open() gives under this umask
            f.write('c')
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {'a.json': 0o666 & ~mask, 'b.png': 0o666 & ~mask, 'c.txt': 0o666 & ~mask}
