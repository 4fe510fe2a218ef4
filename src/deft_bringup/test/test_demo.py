"""Smoke test: `deft_demo` brings the whole graph up as processes, runs an episode, leaves none."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.smoke


def test_demo_episode_succeeds_and_cleans_up(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'deft_bringup.demo', '--log_dir', str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env=dict(os.environ))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert 'success: true' in out
    for phase in ('perceive', 'predict', 'approach', 'grasp', 'post_grasp', 'reward', 'reset'):
        assert f'] {phase}' in out, out
    assert 'reward: 1.000' in out, out  # the geometric prior grasps the box and lifts it
    assert sorted(p.name for p in tmp_path.glob('*.log')) == [
        'affordance.log', 'arm.log', 'episode.log', 'hand_driver.log', 'perception.log',
        'sim.log']
    left = subprocess.run(['pgrep', '-f', str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == '', 'node processes left behind'
