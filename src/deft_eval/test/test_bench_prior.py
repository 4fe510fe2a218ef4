"""The prior-latency bench runs the whole frame -> 3D prior path and merges its result."""

import json
import os

from deft_eval import bench_prior


def test_bench_prior_merges_medians_and_load_ratios_per_backend(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    out.write_text(json.dumps({'other': 1}))
    assert bench_prior.main(['--repeats', '1', '--skip-sam', '--small-size', '64',
                             '--load-repeats', '1', '--threads', '1', '--out', str(out)]) == 0
    data = json.loads(out.read_text())
    assert data['other'] == 1  # merged, not overwritten
    entry = data['prior_latency_s']
    assert set(entry['value']) == {'fake', 'depth', 'mobile_sam', 'depth_64px'}
    assert all(v > 0 for v in entry['value'].values())
    assert entry['runs']['depth']['refused'] in (0, 1)
    assert len(entry['runs']['mobile_sam']['load_average']) == 3
    assert entry['goal']['mobile_sam'] == 1.0
    ratio = data['prior_latency_load_ratio']
    assert set(ratio['value']) == {'depth', 'mobile_sam'} and all(
        v > 0 for v in ratio['value'].values())
    run = ratio['runs']['mobile_sam']
    assert run['busy_processes'] == (os.cpu_count() or 1)
    assert abs(run['loaded_s'] / run['idle_s'] - ratio['value']['mobile_sam']) < 1e-2
    assert run['idle_s'] == round(entry['runs']['mobile_sam']['median_s'], 4)
    printed = capsys.readouterr().out
    assert 'depth' in printed and 'busy processes' in printed and 'load average' in printed


def test_the_cpu_load_processes_spin_and_end_with_the_context():
    with bench_prior.CpuLoad(2) as load:
        procs = list(load.processes)
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
    assert not any(p.is_alive() for p in procs)
