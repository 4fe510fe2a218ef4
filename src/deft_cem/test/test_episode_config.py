"""The episode node's configuration from its parameters: space, std0, tau, demonstrations."""

from types import SimpleNamespace

import numpy as np
import pytest

from deft_cem.episode_config import demonstrations_file, load_episode_config
from deft_cem.episode_params import PARAMS
from deft_cem.episode_steps import StepSettings


def params(**kw):
    values = {p.name: p.default for p in PARAMS}
    values.update(kw)
    return SimpleNamespace(**values)


def test_defaults_make_the_installed_hand_and_demonstrations():
    config = load_episode_config(params())
    assert config.space.size == 23 and len(config.std0) == 23
    assert config.std0[0] == pytest.approx(0.02)  # contact_std
    assert str(config.demonstrations_file).endswith('share/deft_cem/config/demonstrations.yaml')
    assert config.demonstrations and all(t == t.strip().lower() for t in config.demonstrations)
    assert config.embedding is None and not config.embedding_ready
    assert config.tau.waypoints.shape == (2, 3)


def test_demonstrations_none_or_a_file(tmp_path):
    assert demonstrations_file('None ') is None
    config = load_episode_config(params(demonstrations='none'))
    assert config.demonstrations == {} and config.demonstrations_file is None
    path = tmp_path / 'demos.yaml'
    path.write_text('Pour the water:\n  waypoints: [0.0, 0.0, 0.05]\n')
    config = load_episode_config(params(demonstrations=str(path)))
    assert list(config.demonstrations) == ['pour the water']
    assert config.demonstrations_file == str(path)


@pytest.mark.parametrize('kw,message', [
    (dict(hand_config='/nonexistent/hand.yaml'), '/nonexistent/hand.yaml'),
    (dict(post_grasp_rotations=[0.1, 0.0]), 'post_grasp_rotations needs one finite rotation'),
    (dict(demonstrations='/nonexistent/demos.yaml'), 'demos.yaml'),
    (dict(default_reward_source='embedding'),
     'default_reward_source is embedding, but embedding_weights'),
    (dict(embedding_weights='/nonexistent/r18.pt'), 'embedding reward: '),
])
def test_unusable_parameters_say_why(kw, message):
    with pytest.raises((ValueError, OSError), match=message):
        load_episode_config(params(**kw))


def test_step_settings_come_from_the_parameters_of_the_same_names():
    s = StepSettings.from_params(params(scene_reset='operator', settle_time=1.5))
    assert (s.scene_reset, s.settle_time) == ('operator', 1.5)
    assert (s.service_timeout, s.final_image_timeout, s.reset_timeout) == (10.0, 5.0, 300.0)


def test_a_run_from_the_heuristic_prior_explores_wrist_and_hand_wider():
    config = load_episode_config(params())
    space = config.space
    wrist = [space.names.index(n) for n in ('wrist_rx', 'wrist_ry', 'wrist_rz')]
    hand = [i for i, n in enumerate(space.names) if n.startswith('hand_')]
    same = [i for i in range(space.size) if i not in wrist + hand]
    h, a = config.initial_std('heuristic'), config.initial_std('affordance')
    assert np.all(h[wrist] == pytest.approx(0.4)) and np.all(a[wrist] == pytest.approx(0.2))
    assert np.all(h[hand] == pytest.approx(0.3)) and np.all(a[hand] == pytest.approx(0.1))
    np.testing.assert_array_equal(h[same], a[same])  # contact and tau as for DEFT
    assert config.space.wrist_residual_max == pytest.approx(np.pi / 2, abs=1e-4)
