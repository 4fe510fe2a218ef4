"""
The pour through the real graph in the MuJoCo twin, scored honestly.

The graph's `fake` affordance backend grasps the cup from above, over its mouth (the geometric
prior); the episode runs the pour's demonstrated tau (lift, carry, a 130 deg turn towards the
bowl) with it. The twin's cup holds loose material: a hand over the mouth pours none of it, so
the episode runs through and scores what the lift earns (0.3 touched + 0.2 lifted). The human's
side grasp that does pour is the scripted demonstration of deft_sim's tests.
"""

from pathlib import Path
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import FAST_SIM, Probe, start_graph, wait_until
from deft_common.rotations import Transform
from deft_interfaces.action import RunEpisode
from deft_interfaces.srv import ResetSim

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])  # common.yaml


def test_a_pour_with_the_hand_over_the_mouth_lifts_the_cup_and_pours_nothing(ros, tmp_path):
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['sim'].update(backend='mujoco', mujoco_task='pour_cup')
    overrides['episode'].update(run_root=str(tmp_path), scene_reset='none')
    graph = start_graph('mujoco_pour', LOG_ROOT, overrides=overrides, config_dir=CONFIG)
    with graph:
        client, probe = EpisodeClient(name='pour_client'), Probe(name='pour_probe')
        try:
            infos = []
            probe.node.create_subscription(CameraInfo, 'camera/color/camera_info',
                                           infos.append, 1)
            assert client.wait_for_server(60)
            wait_until(lambda: infos, 60, 'camera_info')
            k = np.array(infos[-1].k).reshape(3, 3)
            reset = probe.call(ResetSim, 'sim/reset', ResetSim.Request(seed=3, split='test'),
                               timeout=30, resend_after=3.0)
            p = reset.object_pose.position
            # two objects stand on the table (cup and bowl): the operator points at the cup
            xc, yc, zc = CAMERA_TO_BASE.inverse().apply(np.array([[p.x, p.y, p.z]]))[0]
            u, v = k[0, 0] * xc / zc + k[0, 2], k[1, 1] * yc / zc + k[1, 2]
            time.sleep(1.5)  # frames of the placed scene
            goal = RunEpisode.Goal(task='pour from the cup into the bowl', mode='prior',
                                   object_prompt=f'point: {u:.0f}, {v:.0f}',
                                   reward_source='sim', seed=3)
            outcome = client.run(goal, timeout=180)
            r = outcome.result
            assert outcome.status == GoalStatus.STATUS_SUCCEEDED, r.message
            assert r.success and 0.45 < r.reward < 0.6, \
                (r.reward, graph.tail('sim'), graph.tail('affordance'))
            assert 'demonstrated tau for 6 tasks' in graph.tail('episode', 400)
        finally:
            probe.close()
            client.close()
