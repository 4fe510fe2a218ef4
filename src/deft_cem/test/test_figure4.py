"""Figure 4 over run directories: DEFT vs real-world only, a panel per task, mean and band."""

import math

import pytest

from deft_cem.figure4 import curves, write_figure4
from deft_cem.report import main
from deft_common.runs import EpisodeEntry, RunSettings, RunStore


def make_run(root, run_id, task, prior, rewards):
    store = RunStore(root, run_id)
    store.create(RunSettings(task=task, object_prompt='', episodes=4, warmup_episodes=2,
                             elites=1, initial_std=[0.1], reward_source='sim', optimizer='cem',
                             prior=prior, seed=0, parameter_names=['contact_x']))
    for k, r in enumerate(rewards):
        store.append(EpisodeEntry(episode=k, xi=[0.5], eps=[0.0], reward=r,
                                  reward_source='sim', stamp=0.0))
    return store.dir


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, 'cup-deft-0', 'pick up the cup', 'affordance', [0.2, 0.4, 0.6]),
            make_run(tmp_path, 'cup-deft-1', 'pick up the cup', 'affordance', [0.4, 0.6]),
            make_run(tmp_path, 'cup-rwo-0', 'pick up the cup', 'heuristic', [0.0, 0.1, 0.0]),
            make_run(tmp_path, 'drawer-deft-0', 'open the drawer', 'affordance', [1.0, 1.0])]


def test_curves_average_runs_per_task_and_method(runs):
    items = {(c.task, c.method): c for c in curves(runs)}
    deft = items[('pick up the cup', 'DEFT')]
    assert deft.n == [2, 2, 1]                       # the short run has no episode 3
    assert deft.mean == pytest.approx([0.3, 0.5, 0.6])
    assert deft.low[0] == 0.0 and deft.high[0] == 1.0   # t(1 df) band, clipped to [0, 1]
    assert math.isnan(deft.low[2])                   # one run: no band
    assert items[('pick up the cup', 'real-world only')].mean == pytest.approx([0.0, 0.1, 0.0])
    assert set(items) == {('pick up the cup', 'DEFT'), ('pick up the cup', 'real-world only'),
                          ('open the drawer', 'DEFT')}


def test_figure4_files_and_cli(runs, tmp_path, capsys):
    png, csv = write_figure4(runs, tmp_path / 'fig' / 'figure4.png')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    rows = csv.read_text().splitlines()
    assert rows[0] == 'task,method,episode,runs,mean,low,high'
    assert rows[1] == '"pick up the cup",DEFT,1,2,0.300000,0.000000,1.000000'
    assert '"pick up the cup",DEFT,3,1,0.600000,,' in rows     # episodes numbered from 1
    assert len(rows) == 1 + 3 + 3 + 2
    assert main(['--figure4', str(tmp_path / 'f.png'), *map(str, runs)]) == 0
    assert (tmp_path / 'f.csv').is_file() and 'figure 4 of 4 runs' in capsys.readouterr().out
    assert main(['--figure4', str(tmp_path / 'f.jpg'), str(runs[0])]) == 1
    assert main(['--figure4', str(tmp_path / 'g.png'), str(tmp_path / 'nothing')]) == 1
    assert 'not a run directory' in capsys.readouterr().err
