"""The learned affordance backend in the real graph: crop -> model -> 3D contact, wrist, joints."""

import json
from pathlib import Path

import numpy as np
import pytest

from deft_bringup.testing import FAST_SIM, Probe, start_graph
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.srv import PredictGrasp, ResetSim

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'
# a tiny open_clip text tower and small heads: a real (randomly initialised) model in seconds
TINY_CLIP = {'embed_dim': 32,
             'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'head_width': 16,
                            'patch_size': 16},
             'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2,
                          'layers': 1}}


@pytest.fixture(scope='module')
def model_graph(ros, tmp_path_factory):
    import torch

    from deft_affordance.model import AffordanceModel

    folder = tmp_path_factory.mktemp('affordance')
    clip = folder / 'tiny-clip.json'
    clip.write_text(json.dumps(TINY_CLIP))
    torch.manual_seed(0)
    model = AffordanceModel.build('resnet18', clip_model=str(clip), allow_random=True,
                                  image_size=64, num_contacts=2, deconv_channels=16, d_model=32,
                                  heads=2, layers=1)
    checkpoint = model.save(folder / 'affordance.pt')
    overrides = {'sim': dict(FAST_SIM['sim']),
                 'affordance': {'backend': 'model', 'checkpoint': str(checkpoint),
                                'allow_random': True, 'max_lift_distance_px': 1000.0}}
    graph = start_graph('affordance_model', LOG_ROOT, overrides=overrides, config_dir=CONFIG,
                        only=['sim', 'perception', 'affordance'])
    with graph:
        probe = Probe(name='affordance_probe')
        try:
            yield graph, probe
        finally:
            probe.close()


def test_model_prior_is_lifted_onto_the_object_and_retargeted(model_graph):
    graph, probe = model_graph
    reset = probe.call(ResetSim, 'sim/reset', ResetSim.Request(seed=5, split='train'), timeout=30,
                       resend_after=3.0)
    placed = probe.node.get_clock().now().to_msg()  # segment a frame of the placed scene
    r = probe.call(PredictGrasp, 'affordance/predict',
                   PredictGrasp.Request(task='pick up the cup', not_before=placed), timeout=60)
    assert r.success, (r.error_msg, graph.tail('affordance'))
    prior = r.prior
    assert prior.source == 'model' and len(prior.contact_pixels) == 4
    assert len(prior.hand_pose) == 45
    # the contact is lifted to a point of the object (a 6 x 6 x 10 cm box), in the base frame
    obj = reset.object_pose.position
    c = prior.contact_point
    assert np.hypot(c.x - obj.x, c.y - obj.y) < 0.06 and 0.0 < c.z < 0.12
    q = prior.wrist_orientation
    assert np.hypot(np.hypot(q.x, q.y), np.hypot(q.z, q.w)) == pytest.approx(1.0)
    hand = load_hand_config('')
    got = dict(zip(prior.hand_joint_names, prior.hand_joint_positions))
    assert sorted(got) == sorted(hand.joint_names)
    for name, lo, hi in zip(hand.joint_names, hand.lower, hand.upper):
        assert lo - 1e-9 <= got[name] <= hi + 1e-9, name
    log = graph.tail('affordance', 50)
    assert 'affordance model' in log
    # warmed up at start: the log gives the steady per-call time, and each answer its latency
    assert 'warm-up: first call' in log and 'ms per call' in log
    assert 0.0 < r.latency < 30.0
