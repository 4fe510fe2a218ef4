"""The embedding reward with real torchvision ResNets built here (random weights, no download)."""

from dataclasses import dataclass
import math

import numpy as np
from PIL import Image
import pytest
import torch

from deft_affordance.embedding_reward import EmbeddingReward, reward_from_distance
from deft_affordance.encoders import build_trunk, preprocess

SCALE = 1.0


@pytest.fixture(scope='module', autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def trunk():
    torch.manual_seed(0)
    return build_trunk('resnet18').eval()


@pytest.fixture(scope='module')
def weights(tmp_path_factory, trunk):
    """Save a torchvision-style ResNet-18 state dict (with an fc, as torchvision saves it)."""
    path = tmp_path_factory.mktemp('weights') / 'resnet18.pt'
    state = dict(trunk.state_dict())
    state['fc.weight'] = torch.zeros(1000, 512)
    state['fc.bias'] = torch.zeros(1000)
    torch.save(state, path)
    return path


@pytest.fixture(scope='module')
def goal():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def goal_embedding(trunk, goal):
    """Embed the goal with the in-memory model, preprocessed as the reward does."""
    with torch.inference_mode():
        return trunk(preprocess(goal)).reshape(-1).double().numpy()


@pytest.fixture(scope='module')
def scorer(weights, goal):
    reward = EmbeddingReward.from_config('resnet18', str(weights), None, 'cpu', scale=SCALE)
    reward.set_goal(goal)
    return reward


def test_loaded_weights_embed_like_the_model_in_memory(scorer, goal, goal_embedding):
    got = scorer.embed(goal)
    assert got.shape == (512,)
    assert np.linalg.norm(got) > 0.0
    np.testing.assert_array_equal(got, goal_embedding)


def test_random_weights_are_refused_unless_allowed():
    with pytest.raises(ValueError, match='no weights for the resnet18 encoder'):
        EmbeddingReward.from_config('resnet18', '', scale=SCALE)
    with pytest.raises(ValueError, match='no weights for the r3m encoder'):
        EmbeddingReward.from_config('r3m', '', scale=SCALE)
    reward = EmbeddingReward.from_config('resnet18', '', scale=SCALE, allow_random=True)
    assert 'random' in reward.name


def test_r3m_checkpoint_loads_and_embeds(tmp_path, trunk, goal, goal_embedding):
    state = {'module.convnet.' + k: v for k, v in trunk.state_dict().items()}
    state['module.lang_rew.0.weight'] = torch.zeros(4, 4)  # the language head is ignored
    path = tmp_path / 'model.pt'
    torch.save({'r3m': state}, path)
    r3m = EmbeddingReward.from_config('r3m', str(path), scale=SCALE)
    np.testing.assert_array_equal(r3m.embed(goal), goal_embedding)


def test_r3m_checkpoint_with_wrong_keys_is_refused(tmp_path, trunk):
    state = {'module.convnet.' + k: v for k, v in trunk.state_dict().items()}
    del state['module.convnet.layer4.1.bn2.weight']
    state['module.convnet.head.weight'] = torch.zeros(3)
    path = tmp_path / 'bad.pt'
    torch.save({'r3m': state}, path)
    with pytest.raises(ValueError) as err:
        EmbeddingReward.from_config('r3m', str(path), scale=SCALE)
    message = str(err.value)
    assert 'closest is resnet18' in message
    assert "'module.convnet.layer4.1.bn2.weight'" in message
    assert "'module.convnet.head.weight'" in message


def test_r3m_file_without_r3m_entry_is_refused(weights):
    with pytest.raises(ValueError, match="not an R3M checkpoint: expected a dict with an 'r3m'"):
        EmbeddingReward.from_config('r3m', str(weights), scale=SCALE)


def test_r3m_checkpoint_given_as_resnet18_says_so(tmp_path, trunk):
    path = tmp_path / 'model.pt'
    torch.save({'r3m': {'module.convnet.' + k: v for k, v in trunk.state_dict().items()}}, path)
    with pytest.raises(ValueError, match="set the encoder to 'r3m'"):
        EmbeddingReward.from_config('resnet18', str(path), scale=SCALE)


def test_wrong_shapes_are_refused(tmp_path, trunk):
    state = dict(trunk.state_dict())
    state['conv1.weight'] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / 'shapes.pt'
    torch.save(state, path)
    with pytest.raises(ValueError, match='size mismatch for conv1.weight'):
        EmbeddingReward.from_config('resnet18', str(path), scale=SCALE)


@dataclass
class Payload:
    """Anything that is not tensors: unpickling it could run code."""

    command: str = 'echo pwned'


def test_pickled_object_is_refused_under_weights_only(tmp_path):
    path = tmp_path / 'evil.pt'
    torch.save(Payload(), path)
    with pytest.raises(ValueError, match='cannot be loaded with weights_only=True') as err:
        EmbeddingReward.from_config('resnet18', str(path), scale=SCALE)
    assert 'Payload' in str(err.value)
    assert 'weights_only=False' not in str(err.value)


def test_missing_and_garbage_weight_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        EmbeddingReward.from_config('resnet18', str(tmp_path / 'none.pt'), scale=SCALE)
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot be loaded with weights_only=True'):
        EmbeddingReward.from_config('resnet18', str(garbage), scale=SCALE)


def test_goal_itself_has_the_maximum_reward(scorer, goal):
    score = scorer.score(goal.copy())
    assert score.distance == 0.0
    assert score.negative_distance == 0.0
    assert score.reward == 1.0


def test_closer_image_gets_higher_reward(scorer, goal):
    rng = np.random.default_rng(2)
    noisy = np.clip(goal.astype(int) + rng.integers(-8, 9, goal.shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, size=(60, 40, 3), dtype=np.uint8)
    near, far = scorer.score(noisy), scorer.score(other)
    assert 0.0 < near.distance < far.distance
    assert 1.0 > near.reward > far.reward >= 0.0
    assert near.negative_distance > far.negative_distance
    assert scorer.reward(noisy) == pytest.approx(near.reward)


def test_goal_from_an_image_file_equals_goal_from_the_array(tmp_path, scorer, weights, goal):
    path = tmp_path / 'goal.png'
    Image.fromarray(goal).save(path)
    from_file = EmbeddingReward.from_config('resnet18', str(weights), str(path), scale=SCALE)
    assert from_file.has_goal
    assert from_file.score(goal).distance == 0.0  # the PNG round trip is lossless


def test_reward_map_is_in_unit_interval_and_strictly_decreasing():
    distances = [0.0, 1e-6, 0.1, 1.0, 5.0, 30.0, 700.0, 1e6]
    rewards = [reward_from_distance(d, 2.0) for d in distances]
    assert rewards[0] == 1.0
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert all(a > b for a, b in zip(rewards[:-2], rewards[1:-1]))
    assert rewards[-1] == 0.0  # saturates far out: rank by negative_distance
    assert reward_from_distance(2.0, 2.0) == pytest.approx(math.exp(-1.0))
    with pytest.raises(ValueError):
        reward_from_distance(-1.0, 2.0)


@pytest.mark.parametrize('image, message', [
    (np.zeros((8, 8, 3), np.float32), 'dtype uint8'),
    (np.zeros((8, 8), np.uint8), r'shape \(H, W, 3\)'),
    (np.zeros((8, 8, 4), np.uint8), 'drop the alpha channel'),
    (np.zeros((0, 8, 3), np.uint8), 'empty'),
    ([[[0, 0, 0]]], 'numpy array'),
])
def test_bad_images_raise_value_error(scorer, image, message):
    with pytest.raises(ValueError, match=message):
        scorer.reward(image)
    with pytest.raises(ValueError, match=message):
        scorer.embed(image)


def test_bad_configuration_raises_value_error(weights, tmp_path):
    with pytest.raises(ValueError, match='not one of resnet18, r3m'):
        EmbeddingReward.from_config('vit', str(weights), scale=SCALE)
    for scale in (0.0, -1.0, math.nan, math.inf, True):
        with pytest.raises(ValueError, match='scale must be'):
            EmbeddingReward.from_config('resnet18', '', scale=scale, allow_random=True)
    with pytest.raises(ValueError, match='not a torch device'):
        EmbeddingReward.from_config('resnet18', '', device='gpu0', scale=SCALE,
                                    allow_random=True)
    with pytest.raises(ValueError, match='goal image .* does not exist'):
        EmbeddingReward.from_config('resnet18', '', str(tmp_path / 'none.png'), scale=SCALE,
                                    allow_random=True)
    text = tmp_path / 'goal.png'
    text.write_text('not an image')
    with pytest.raises(ValueError, match='cannot be read as an image'):
        EmbeddingReward.from_config('resnet18', '', str(text), scale=SCALE, allow_random=True)


def test_reward_without_goal_says_what_to_do(trunk):
    reward = EmbeddingReward(trunk, scale=SCALE)
    with pytest.raises(RuntimeError, match='no goal image set'):
        reward.reward(np.zeros((8, 8, 3), np.uint8))
