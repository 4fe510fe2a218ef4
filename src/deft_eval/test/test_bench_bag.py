"""The bag benchmark writes a twin demo episode the way the episode node does."""

import json

from deft_eval import bench_bag


def test_a_demo_episode_bag_is_small_with_zstd_chunks(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert bench_bag.main(['--out', str(out)]) == 0
    entry = json.loads(out.read_text())['episode_bag_mb']
    assert entry['unit'] == 'MB' and 0.0 < entry['value']
    assert 'raw (none)' in entry['detail'] and 'episode bag:' in capsys.readouterr().out
    m = bench_bag.measure()
    assert m['joint_samples'] > 20  # ~10 Hz over an episode of several seconds
    assert m['zstd_mb'] * 10 < m['raw_mb']
