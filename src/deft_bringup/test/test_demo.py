"""Smoke test: `deft_demo` brings the whole graph up as processes, runs an episode, leaves none."""

import json
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest

from deft_bringup.testing import tagged_processes

pytestmark = pytest.mark.smoke

PHASES = ('perceive', 'predict', 'approach', 'grasp', 'post_grasp', 'reward', 'reset')


def tagged_env(**extra):
    """Return the demo's environment with a DEFT_RUN_TAG of its own (its nodes inherit it)."""
    tag = f'test-demo-{uuid.uuid4().hex}'
    return tag, dict(os.environ, DEFT_RUN_TAG=tag, **extra)


def test_demo_episode_succeeds_and_cleans_up(tmp_path):
    tag, env = tagged_env()
    proc = subprocess.run([sys.executable, '-m', 'deft_bringup.demo', '--single', '--log_dir',
                           str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert 'success: true' in out
    for phase in PHASES:
        assert f'] {phase}' in out, out
    # the geometric prior grasps the cup and lifts it: touching it scores 0.3, the rest is 0.7 x
    # lift x (0.6 + carry and hold), halved for a drop (measured 0.65-0.82 on this cup instance)
    reward = float(re.search(r'\n  reward: ([0-9.]+)\n', out).group(1))
    assert reward >= 0.5, out
    assert sorted(p.name for p in tmp_path.glob('*.log')) == [
        'affordance.log', 'arm.log', 'episode.log', 'hand_driver.log', 'perception.log',
        'sim.log']
    # every node process carried the tag (runner.GraphProcesses); none may outlive the demo
    assert tagged_processes(tag) == [], 'node processes left behind'


def test_demo_fine_tunes_with_a_line_per_episode_and_a_report(tmp_path):
    """
    The default demo is Algorithm 1 (here shortened: N = 3, M = 2) with its report.

    A Ctrl-C after the first episode cancels the run (exit 130, the report written, how to
    resume printed); `--resume` then finishes it.
    """
    tag, env = tagged_env(ROS_HOME=str(tmp_path / 'ros'))
    cmd = [sys.executable, '-m', 'deft_bringup.demo', '--log_dir', str(tmp_path / 'logs')]
    proc = subprocess.Popen(cmd + ['--episodes', '3', '--warmup', '2', '--elites', '1',
                                   '--run_id', 'smoke'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    first = []
    try:
        for line in proc.stdout:
            first.append(line)
            if 'episode   1/3: reward ' in line:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out1 = ''.join(first)
    assert proc.returncode == 130, out1
    assert 'interrupted: cancelling fine_tune' in out1 and '\nresult: canceled\n' in out1
    assert 'interrupted after 1 episodes; resume it with: deft_demo --task "pick up the cup" ' \
           '--resume smoke' in out1
    run = tmp_path / 'ros' / 'deft' / 'runs' / 'smoke'
    assert (run / 'report.png').stat().st_size > 10_000 and (run / 'rewards.csv').is_file()
    assert tagged_processes(tag) == [], 'node processes left behind'
    proc = subprocess.run(cmd + ['--resume', 'smoke', '--policy_trials', '1',
                                 '--policy_elites', '2'],
                          capture_output=True, text=True, timeout=400, env=env)
    out2 = proc.stdout + proc.stderr
    assert proc.returncode == 0, out2
    out = out1 + out2
    lines = {k: next((line for line in out.splitlines() if f'episode   {k}/3: reward ' in line),
                     None) for k in (1, 2, 3)}
    for line in lines.values():  # one line per episode, with the phases it went through
        assert line is not None, out
        assert line.endswith('phases ' + ' > '.join(PHASES)), line
    assert 'CEM refit' in out2 and 'resuming run smoke' in out2
    result = out2[out2.index('\nresult: '):]
    assert result.startswith('\nresult: succeeded\n  success: true\n  episodes: 3\n'), out2
    assert tagged_processes(tag) == [], 'node processes left behind'
    assert f'report: {run / "report.png"}' in out2
    assert (run / 'report.png').stat().st_size > 10_000
    assert len(list((run / 'episodes').glob('*.json'))) == 3
    # each episode carries the twin's verdict; the first and last third are compared with it
    verdicts = [json.loads(p.read_text())['task_success']
                for p in sorted((run / 'episodes').glob('*.json'))]
    assert all(isinstance(v, bool) for v in verdicts), verdicts
    assert f'  first 1 episodes: {int(verdicts[0])}/1 done' in out2
    assert f'  last 1 episodes: {int(verdicts[-1])}/1 done' in out2
    # then pi is trained on the run's 2 best episodes and run once on a test configuration
    assert (run / 'policy_cvae.pt').is_file(), out2
    assert re.search(r'\n  test configuration \(test, seed 900000, instance [a-z_]+/test/\d+\): '
                     r'pi reward [0-9.]+ \((done|not done)\), prior reward [0-9.]+ '
                     r'\((done|not done)\)\n', out2), out2
    assert re.search(r'\n  on 1 test configurations: pi [01] done, the prior alone [01]\n', out2)


def test_demo_refuses_a_task_the_twin_does_not_have(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'deft_bringup.demo', '--task', 'juggle'],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 2 and "no simulated task has the text 'juggle'" in proc.stderr
