import os

import pytest

from deft_cem.report import elite_means, main, summary_text, write_report
from deft_common.runs import EpisodeEntry, RunSettings, RunStore


def make_run(root, rewards, warmup=3, elites=2):
    store = RunStore(root, 'demo')
    store.create(RunSettings(task='pick up the cup', object_prompt='', episodes=8,
                             warmup_episodes=warmup, elites=elites, initial_std=[0.1],
                             reward_source='sim', optimizer='cem', prior='affordance', seed=1,
                             parameter_names=['contact_x']))
    for k, r in enumerate(rewards):
        store.append(EpisodeEntry(episode=k, xi=[0.5], eps=[0.01 * k], reward=r,
                                  reward_source='sim', stamp=0.0))
    return store


def test_elite_means_track_the_best_so_far():
    assert elite_means([0.1, 0.5, 0.3, 0.9], 2) == pytest.approx([0.1, 0.3, 0.4, 0.7])


def test_report_files(tmp_path):
    store = make_run(tmp_path, [0.1, 0.2, 0.0, 0.6, 0.8])
    png = write_report(store.dir)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 10_000
    text = (store.dir / 'summary.txt').read_text()
    assert 'episodes: 5 of 8 (warm-up 3, elites 2)' in text
    assert 'best reward: 0.800 at episode 5 (episodes/000004.json)' in text  # counted from 1
    rows = (store.dir / 'rewards.csv').read_text().splitlines()
    assert rows[0] == 'episode,reward,elite_mean,stage,reward_source' and len(rows) == 6
    assert rows[1] == '1,0.100000,0.100000,warmup,sim'
    assert rows[3].endswith(',warmup,sim') and rows[4] == '4,0.600000,0.400000,cem,sim'
    assert 'mean reward, warm-up: 0.100; after warm-up: 0.700' in text
    assert 'contact_x=+0.0400' in text


def test_empty_run_and_cli_errors(tmp_path, capsys):
    store = make_run(tmp_path, [])
    assert 'no finished episode yet' in summary_text(store.settings(), [], 'demo')
    assert main([str(store.dir)]) == 0
    assert main([str(tmp_path / 'missing')]) == 1
    assert "run 'missing' not found" in capsys.readouterr().err


def test_a_failed_rewrite_keeps_the_previous_report(tmp_path, monkeypatch):
    import matplotlib.figure

    store = make_run(tmp_path, [0.1, 0.2, 0.0, 0.6])
    png = write_report(store.dir)
    old_png, old_text = png.read_bytes(), (store.dir / 'summary.txt').read_text()
    store.append(EpisodeEntry(episode=4, xi=[0.5], eps=[0.1], reward=0.9, reward_source='sim',
                              stamp=0.0))
    real_savefig = matplotlib.figure.Figure.savefig

    def dies_halfway(fig, f, **kw):
        real_savefig(fig, f, **kw)  # the new PNG is written to the temporary file...
        raise OSError(28, 'No space left on device')  # ...and the write fails after it

    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', dies_halfway)
    with pytest.raises(OSError, match='No space'):
        write_report(store.dir)
    assert png.read_bytes() == old_png
    assert 'episodes: 5 of 8' in (store.dir / 'summary.txt').read_text()  # written first
    assert not [p for p in store.dir.iterdir() if p.suffix == '.tmp']

    # the summary too: a failure between writing and renaming leaves the old one
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', real_savefig)
    (store.dir / 'summary.txt').write_text(old_text)

    def no_rename(src, dst):
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(os, 'replace', no_rename)
    with pytest.raises(OSError, match='Input/output'):
        write_report(store.dir)
    assert (store.dir / 'summary.txt').read_text() == old_text and png.read_bytes() == old_png
    assert not [p for p in store.dir.iterdir() if p.suffix == '.tmp']
