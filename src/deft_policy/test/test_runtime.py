"""The residual policy at episode time: checkpoint path, cache, feature kind, residual."""

import os

import numpy as np
import pytest
import torch

from deft_common import runs as run_files
from deft_common.runs import EpisodeEntry, RunSettings, RunStore
from deft_policy import dataset as elite_data
from deft_policy import features
from deft_policy import policy as pol
from deft_policy.runtime import (
    MissingImage,
    PolicyCache,
    policy_path,
    policy_residual,
    policy_summary,
)

torch.set_num_threads(1)
NAMES = ['a', 'b', 'c']


def scene(k, size=48):
    img = np.full((size, size, 3), 200, dtype=np.uint8)
    img[4 * k:4 * k + 8, 10:18] = (220, 30, 30)
    return img


def make_run(root, run_id, features):
    rng = np.random.default_rng(1)
    store = RunStore(root, run_id)
    store.create(RunSettings(task='t', object_prompt='', episodes=6, warmup_episodes=2,
                             elites=3, initial_std=[0.1] * 3, reward_source='sim',
                             optimizer='cem', prior='affordance', seed=1,
                             parameter_names=NAMES))
    for k in range(6):
        store.append(EpisodeEntry(episode=k, xi=rng.normal(size=3).tolist(),
                                  eps=rng.normal(size=3).tolist(), reward=float(k) / 6,
                                  reward_source='sim', stamp=0.0))
        if features:
            run_files.save_features(store.dir, k, rng.normal(size=4))
        else:
            run_files.save_initial_image(store.dir, k, scene(k))
    return store.dir


def trained(run_dir, features, extractor=None):
    data = elite_data.build_dataset([run_dir], 3, features, extractor)
    policy = pol.train_policy(data, pol.config_for(data, 'mlp', extractor, epochs=5, seed=1),
                              extractor)
    return policy.save(run_dir / 'policy_mlp.pt')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    weights = root / 'resnet18.pt'
    torch.save(features.ResNetFeatures(init_seed=3).net.state_dict(), weights)
    extractor = features.ResNetFeatures(str(weights), image_size=64)
    plain, files = make_run(root, 'plain', False), make_run(root, 'files', True)
    return root, trained(plain, 'image', extractor), trained(files, 'file')


def test_policy_path_resolves_in_the_runs_directory(runs):
    root, plain, _ = runs
    assert policy_path('policy_mlp.pt', root, 'plain') == plain
    assert policy_path('policy_mlp.pt', root, '') is None          # a relative name needs a run
    assert policy_path('policy_mlp.pt', root, 'nope') is None
    assert policy_path('policy_mlp.pt', root, '../plain') is None  # not a valid run id
    assert policy_path(str(plain), root, '') == plain              # absolute: as is
    assert policy_path(str(root / 'x.pt'), root, 'plain') is None


def test_cache_loads_once_reloads_a_changed_file_and_refuses_file_features(runs, tmp_path):
    root, plain, files = runs
    cache = PolicyCache(NAMES)
    first, fresh = cache.get(plain)
    assert fresh and first.config.feature_kind == 'image'
    assert policy_summary(plain, first, False) == (f"residual policy {plain}: 'mlp' on 'image' "
                                                   'features, z = 0')
    assert policy_summary(plain, first, True).endswith('z sampled')
    again, fresh = cache.get(plain)
    assert again is first and not fresh
    copy = tmp_path / 'copy.pt'
    copy.write_bytes(plain.read_bytes())
    cache.get(copy)
    os.utime(copy, ns=(1, 1))  # the file changed: loaded again
    assert cache.get(copy)[1]
    with pytest.raises(ValueError, match='precomputed feature files'):
        cache.get(files)
    with pytest.raises(ValueError, match='residual policy'):
        PolicyCache(['x', 'y', 'z']).get(plain)  # other parameter names
    with pytest.raises(ValueError, match='No such file'):
        cache.get(tmp_path / 'gone.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='residual policy'):
        cache.get(tmp_path / 'junk.pt')


def test_residual_of_a_policy(runs):
    root, plain, _ = runs
    policy, _ = PolicyCache(NAMES).get(plain)
    xi, image = [0.1, 0.2, 0.3], scene(2)
    eps = policy_residual(policy, xi, image, False, 3)
    assert eps.shape == (3,) and np.all(np.isfinite(eps))
    np.testing.assert_allclose(eps, policy.residual(np.asarray(xi), image=image, seed=3))
    assert not np.allclose(eps, policy_residual(policy, xi, scene(0), False, 3))
    with pytest.raises(MissingImage, match='initial image I0'):
        policy_residual(policy, xi, None, False, 3)
    with pytest.raises(ValueError, match='residual policy'):
        policy_residual(policy, [0.1, 0.2], image, False, 3)
