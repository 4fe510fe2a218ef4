"""
fine_tune across real processes.

A short run end to end, and SIGKILL of the episode node in the middle of a run followed by resume:
no finished episode lost or duplicated, the same distribution.
"""

import json
from pathlib import Path
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
from rclpy.action import ActionClient

from deft_bringup.testing import FAST_SIM, Probe, start_graph, wait_until
from deft_cem.fine_tune import build_optimizer
from deft_cem.optimizers import replay
from deft_cem.runs import RunStore, history
from deft_interfaces.action import FineTune

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'


@pytest.fixture(scope='module')
def run_root(tmp_path_factory):
    return tmp_path_factory.mktemp('runs')


@pytest.fixture(scope='module')
def tuned(ros, run_root):
    """Start the sim graph with runs in a temporary directory, and a probe node."""
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['episode']['run_root'] = str(run_root)
    graph = start_graph('fine_tune', LOG_ROOT, overrides=overrides, config_dir=CONFIG)
    with graph:
        probe = Probe(name='tune_probe')
        try:
            yield graph, probe
        finally:
            probe.close()


def send(client, goal, timeout, on_feedback=None, kill_when=None):
    """Send a FineTune goal; return (status, result, feedback list)."""
    feedback = []

    def fb(msg):
        feedback.append(msg.feedback)
        if on_feedback:
            on_feedback(msg.feedback)

    # A server that just (re)started may match the client's request writer a moment after
    # wait_for_server() said yes (it can still see the killed process' endpoints): a request
    # sent before the match is lost (volatile QoS), so send again, as a careful client does.
    for attempt in range(3):
        future = client.send_goal_async(goal, feedback_callback=fb)
        try:
            wait_until(future.done, 10, 'the fine_tune goal response')
            break
        except AssertionError:
            if attempt == 2:
                raise
    handle = future.result()
    assert handle.accepted
    result = handle.get_result_async()
    deadline = time.monotonic() + timeout
    while not result.done():
        if kill_when and kill_when(feedback):
            return None, None, feedback
        assert time.monotonic() < deadline, f'fine_tune did not finish in {timeout} s'
        time.sleep(0.05)
    return result.result().status, result.result().result, feedback


def test_short_run_end_to_end(tuned, run_root):
    graph, probe = tuned
    client = ActionClient(probe.node, FineTune, 'fine_tune')
    assert client.wait_for_server(timeout_sec=30)
    goal = FineTune.Goal(task='pick up the cup', episodes=4, warmup_episodes=2, elites=2,
                         reward_source='sim', optimizer='cem', prior='affordance',
                         run_id='short', seed=5)
    status, result, feedback = send(client, goal, timeout=150)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert len(result.rewards) == 4 and result.best_reward == max(result.rewards)
    assert all(0.0 <= r <= 1.0 for r in result.rewards)
    store = RunStore(run_root, 'short')
    assert [e.episode for e in store.episodes()] == [0, 1, 2, 3]
    assert (store.dir / 'report.png').stat().st_size > 10_000
    assert 'report.png' in result.message
    assert {f.episode for f in feedback} >= {0, 1, 2, 3}
    assert 'refit' in {f.phase for f in feedback}
    assert all(len(f.std) == 23 for f in feedback)
    # an existing run without resume is refused with its code
    status, result, _ = send(client, goal, timeout=30)
    assert status == GoalStatus.STATUS_ABORTED and result.error_code == FineTune.Result.RUN_EXISTS
    client.destroy()


def test_sigkill_mid_run_then_resume_loses_nothing(tuned, run_root):
    graph, probe = tuned
    client = ActionClient(probe.node, FineTune, 'fine_tune')
    assert client.wait_for_server(timeout_sec=30)
    goal = FineTune.Goal(task='pick up the cup', episodes=6, warmup_episodes=2, elites=2,
                         reward_source='sim', run_id='crash', seed=9)
    store = RunStore(run_root, 'crash')

    def three_done_and_moving(feedback):
        return any(f.episode == 3 and f.phase in ('approach', 'grasp') for f in feedback)

    status, _, _ = send(client, goal, timeout=150, kill_when=three_done_and_moving)
    assert status is None
    graph.kill('episode')  # SIGKILL to its process group, in the middle of episode 3
    before = {p.name: p.read_text() for p in store.episodes_dir.glob('*.json')}
    assert len(before) == 3
    graph.restart('episode')
    wait_until(lambda: 'ready:' in graph.tail('episode', 10**6).rsplit('\n$ ', 1)[-1], 30,
               'the restarted node')
    client.destroy()
    client = ActionClient(probe.node, FineTune, 'fine_tune')
    assert client.wait_for_server(timeout_sec=30)
    resumed = FineTune.Goal(task='pick up the cup', run_id='crash', resume=True)
    status, result, _ = send(client, resumed, timeout=150)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    entries = store.episodes()
    assert [e.episode for e in entries] == [0, 1, 2, 3, 4, 5]
    for name, text in before.items():  # finished episodes untouched
        assert (store.episodes_dir / name).read_text() == text
    # episode 3 was drawn from the distribution fitted to episodes 0..2, as without the crash
    expected = replay(build_optimizer(store.settings()), history(entries[:3])).ask()
    np.testing.assert_allclose(entries[3].eps, expected)
    assert json.loads((store.dir / 'run.json').read_text())['seed'] == 9
    client.destroy()


def test_heuristic_baseline_run_keeps_one_prior(tuned, run_root):
    """prior: heuristic (the paper's "real-world only") fine-tunes around one random-yaw prior."""
    graph, probe = tuned
    client = ActionClient(probe.node, FineTune, 'fine_tune')
    assert client.wait_for_server(timeout_sec=30)
    goal = FineTune.Goal(task='pick up the cup', episodes=2, warmup_episodes=2, elites=1,
                         reward_source='sim', prior='heuristic', run_id='baseline', seed=4)
    status, result, _ = send(client, goal, timeout=120)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    store = RunStore(run_root, 'baseline')
    entries, names = store.episodes(), store.settings().parameter_names
    wrist = [i for i, n in enumerate(names) if n.startswith('wrist')]
    assert wrist and np.allclose([entries[0].xi[i] for i in wrist],
                                 [entries[1].xi[i] for i in wrist])
    assert store.settings().prior == 'heuristic'
    client.destroy()
