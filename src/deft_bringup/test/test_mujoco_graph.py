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
def physics_graph(ros):
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['sim'].update(backend='mujoco', mujoco_task='pick_cup')
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
