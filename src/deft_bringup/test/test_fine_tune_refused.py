"""
A fine_tune whose xi + eps the arm refuses before any motion (outside its workspace) goes on.

Each refused episode is recorded with reward 0 (the floor of every reward source) and the twin's
verdict "not done", so the optimiser moves away from it; `max_unreachable` refusals in a row stop
the run with a message that names the likely cause. Before, the first refusal stopped the run,
and a resumed run asked for the same eps again: it could never go on.
"""

from pathlib import Path

from action_msgs.msg import GoalStatus
import pytest

from deft_bringup.testing import FAST_SIM, Probe, ready_client, send, start_graph, wait_until
from deft_common.runs import RunStore
from deft_interfaces.action import FineTune
from deft_replay.bag_reader import read_episode_bag

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'


def test_refused_episodes_are_recorded_with_reward_0_until_max_unreachable(ros, tmp_path):
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['episode'].update(run_root=str(tmp_path), max_unreachable=2)
    # every placement of the fake world (x 0.4-0.6 m) lies beyond this box: each xi is refused
    overrides['arm'].update(workspace_max=[0.3, 0.5, 0.7])
    graph = start_graph('fine_tune_refused', LOG_ROOT, overrides=overrides, config_dir=CONFIG)
    with graph:
        wait_until(lambda: 'ready:' in graph.tail('episode'), 60, 'the episode node')
        probe = Probe(name='refused_probe')
        try:
            client = ready_client(probe, FineTune, 'fine_tune')
            goal = FineTune.Goal(task='pick up the cup', episodes=5, warmup_episodes=2, elites=2,
                                 reward_source='sim', optimizer='cem', prior='affordance',
                                 run_id='refused', seed=3)
            status, result, feedback = send(client, goal, timeout=120)
        finally:
            probe.close()
    assert status == GoalStatus.STATUS_ABORTED, result.message
    assert result.error_code == FineTune.Result.EPISODE_FAILED
    assert 'episode 2 failed' in result.message and 'x = ' in result.message
    assert '3 episodes in a row were refused' in result.message
    assert 'max_unreachable 2' in result.message and 'the 2 finished episodes' in result.message
    assert list(result.rewards) == [0.0, 0.0]
    entries = RunStore(tmp_path, 'refused').episodes()
    assert [e.episode for e in entries] == [0, 1]
    for e in entries:
        assert e.reward == 0.0 and e.task_success is False, e
        assert e.message.startswith('arm: unreachable: ') and \
            'is above the workspace maximum 0.300' in e.message, e.message
        assert len(e.xi) == 23 and len(e.eps) == 23 and any(e.eps)
    # each has its bag (the initial frame, the prior, no final frame: nothing moved)
    bag = read_episode_bag(entries[1].bag_path)
    assert bag.reward == 0.0 and bag.final_rgb is None and bag.prior is not None
    # the panel's curve counts them: a finished-episode feedback each, with its reward 0
    done = [(f.episode, f.phase, f.last_reward) for f in feedback
            if f.phase in ('warmup', 'refit')]
    assert done == [(1, 'warmup', 0.0), (2, 'refit', 0.0)]
    log = graph.tail('episode', 10**6)
    assert 'episode 0: arm: unreachable' in log and '(1 in a row, at most 2)' in log
