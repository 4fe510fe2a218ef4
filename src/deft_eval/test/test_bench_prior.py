"""The prior-latency bench runs the whole frame -> 3D prior path and merges its result."""

import json

from deft_eval import bench_prior


def test_bench_prior_merges_medians_per_backend(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    out.write_text(json.dumps({'other': 1}))
    assert bench_prior.main(['--repeats', '1', '--skip-sam', '--small-size', '64',
                             '--threads', '1', '--out', str(out)]) == 0
    data = json.loads(out.read_text())
    assert data['other'] == 1  # merged, not overwritten
    entry = data['prior_latency_s']
    assert set(entry['value']) == {'fake', 'depth', 'depth_64px'}
    assert all(v > 0 for v in entry['value'].values())
    assert entry['runs']['depth']['refused'] in (0, 1)
    assert 'depth' in capsys.readouterr().out
