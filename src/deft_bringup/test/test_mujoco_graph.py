"""The whole graph against the MuJoCo twin: a real contact grasp, scored by the physics."""

from pathlib import Path

from action_msgs.msg import GoalStatus
import pytest

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import FAST_SIM, start_graph
from deft_interfaces.action import RunEpisode

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'


@pytest.fixture(scope='module')
def physics_graph(ros, tmp_path_factory):
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['sim'].update(backend='mujoco', mujoco_task='pick_cup')
    overrides['episode']['run_root'] = str(tmp_path_factory.mktemp('mujoco_runs'))
    graph = start_graph('mujoco', LOG_ROOT, overrides=overrides, config_dir=CONFIG)
    with graph:
        client = EpisodeClient(name='mujoco_client')
        try:
            yield graph, client
        finally:
            client.close()


def test_prior_grasp_holds_the_cup_in_physics(physics_graph):
    """Depth segmentation finds the cup (not the hand above it); the prior grasp holds it."""
    graph, client = physics_graph
    outcome = client.run(RunEpisode.Goal(task='pick up the cup', mode='prior',
                                         reward_source='sim', seed=3), timeout=120)
    r = outcome.result
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED, r.message
    # held by contact and friction: 0.3 + 0.7 * lift fraction; not held stays <= 0.3
    assert r.reward > 0.35, (r.reward, graph.tail('sim'))
    assert 'mujoco world' in graph.tail('sim', 400)


def test_short_fine_tune_in_physics(physics_graph):
    """Algorithm 1 through the real nodes in the MuJoCo twin: 3 episodes, a refit, a report."""
    graph, client = physics_graph
    from rclpy.action import ActionClient

    from deft_bringup.testing import wait_until
    from deft_interfaces.action import FineTune

    # kept until the client's node goes: destroying it while the executor waits on it kills
    # the executor thread
    action = ActionClient(client.node, FineTune, 'fine_tune')
    assert action.wait_for_server(timeout_sec=30)
    goal = FineTune.Goal(task='pick up the cup', episodes=3, warmup_episodes=2, elites=1,
                         reward_source='sim', run_id='physics', seed=7)
    phases = []
    future = action.send_goal_async(goal, feedback_callback=lambda m: phases.append(
        m.feedback.phase))
    wait_until(future.done, 15, 'the fine_tune goal response')
    assert future.result().accepted
    result = future.result().get_result_async()
    wait_until(result.done, 180, 'the fine_tune result')
    r = result.result().result
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED, r.message
    assert len(r.rewards) == 3 and all(0.0 <= v <= 1.0 for v in r.rewards)
    assert 'refit' in phases and 'report.png' in r.message
