"""The segment-service bench calls a perception process fed by a camera process, per executor."""

import json

import pytest

from deft_perception import bench_segment_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_bench_times_both_executors_and_merges_its_result(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    out.write_text(json.dumps({'other': 1}))
    assert bench_segment_service.main(['--repeats', '3', '--warmup', '1', '--rounds', '1',
                                       '--rate', '15', '--out', str(out)]) == 0
    data = json.loads(out.read_text())
    assert data['other'] == 1  # merged, not overwritten
    entry = data['segment_service_latency_s']
    # every call waits for a frame stamped after it (at 15 Hz up to 67 ms) and segments it
    assert 0.0 < entry['value'] < 10.0 and 0.0 < entry['baseline_rclpy_executor'] < 10.0
    assert entry['ratio_rclpy_to_pool'] == pytest.approx(
        entry['baseline_rclpy_executor'] / entry['value'], rel=0.02)
    assert set(entry['cpu_s_per_call']) == {'pool', 'rclpy'}
    assert all(v > 0 for v in entry['cpu_s_per_call'].values())
    printed = capsys.readouterr().out
    assert 'round 1, pool' in printed and 'round 1, rclpy' in printed


@pytest.mark.parametrize('args', [['--repeats', '0'], ['--threads', '1'], ['--rate', '0']])
def test_bad_arguments_are_refused_before_anything_starts(args):
    with pytest.raises(SystemExit) as exc:
        bench_segment_service.main(args)
    assert exc.value.code == 2
