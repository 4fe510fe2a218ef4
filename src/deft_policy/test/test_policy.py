"""The residual policy and its ablations on synthetic runs whose best residual is known."""

import os
import pickle

import numpy as np
import pytest
import torch

from deft_common import runs as run_files
from deft_common.checkpoint import checksum
from deft_common.runs import EpisodeEntry, RunSettings, RunStore
from deft_policy import dataset as elite_data
from deft_policy import features, models
from deft_policy import policy as pol
from deft_policy.train_cli import loss_png, main

torch.set_num_threads(1)  # tiny nets: one thread is fastest

# the grasp parameters of deft_cem.grasp_params.ParameterSpace(['thumb'], ...): 8 parameters
NAMES = ['contact_x', 'contact_y', 'contact_z', 'wrist_rx', 'wrist_ry', 'wrist_rz', 'hand_thumb',
         'tau_scale']
STD = np.array([0.01, 0.01, 0.01, 0.1, 0.1, 0.1, 0.1, 0.05])  # CEM search scale per parameter
MIX = np.random.default_rng(7).normal(size=(6, 2))     # "encoder": placement -> 6 features
# The best residual for an object at (x, y) on the table: delta* = A @ (x, y) + b.
A = np.zeros((8, 2))
A[0, 0], A[1, 1], A[2, 0] = 0.3, -0.2, 0.1            # contact offsets follow the object
A[5, 0], A[5, 1], A[6, 1] = 4.0, -3.0, 2.0             # wrist roll and thumb depend on it
B = np.array([0.01, 0.0, 0.02, 0.0, 0.05, 0.0, 0.1, 0.0])
EPISODES, ELITES, EPOCHS = 12, 5, 300
# Error bounds at new placements, as a fraction of the mean-elite baseline's error (measured over
# training seeds 1-5: cvae 0.09-0.10, mlp 0.10-0.11, transformer 0.44-0.58, direct 0.35-0.39;
# direct also carries the prior's noise, since its residual is its estimate minus xi).
BOUNDS = {'cvae': 0.2, 'mlp': 0.2, 'transformer': 0.7, 'direct': 0.5}


def best_residual(pos):
    return A @ np.asarray(pos) + B


def phi(pos, rng):
    return MIX @ np.asarray(pos) + rng.normal(0.0, 0.005, size=6)


def prior_xi(pos, rng):
    """Return the affordance prior for a placement: it sees the object, not the best grasp."""
    x, y = pos
    xi = np.array([0.5 + x, y, 0.05, np.pi, 0.0, 0.0, 0.8, 1.0])
    return xi + rng.normal(0.0, 0.002, size=8)


def make_run(root, run_id, pos, seed, episodes=EPISODES, features=True, names=NAMES):
    """Write a run with RunStore: random residuals around delta*, rewarded by closeness to it."""
    rng = np.random.default_rng(seed)
    store = RunStore(root, run_id)
    store.create(RunSettings(task='pick up the cup', object_prompt='cup', episodes=30,
                             warmup_episodes=10, elites=ELITES, initial_std=list(STD),
                             reward_source='sim', optimizer='cem', prior='affordance',
                             seed=seed, parameter_names=list(names)))
    target = best_residual(pos)
    for k in range(episodes):
        eps = target + rng.normal(0.0, 0.5, size=8) * STD
        reward = float(np.exp(-0.5 * np.mean(((eps - target) / STD) ** 2)))
        store.append(EpisodeEntry(episode=k, xi=prior_xi(pos, rng).tolist(), eps=eps.tolist(),
                                  reward=reward, reward_source='sim', stamp=0.0))
        if features:
            run_files.save_features(store.dir, k, phi(pos, rng))
    return store.dir


PLACEMENTS = [(-0.12, -0.1), (0.12, 0.1), (-0.1, 0.12), (0.1, -0.12), (0.0, 0.0),
              (-0.05, 0.06), (0.06, -0.04), (0.13, -0.01)]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    return [make_run(root, f'place{k}', pos, seed=k) for k, pos in enumerate(PLACEMENTS)]


@pytest.fixture(scope='module')
def dataset(runs):
    return elite_data.build_dataset(runs, ELITES)


@pytest.fixture(scope='module')
def trained(dataset):
    return {m: pol.train_policy(dataset, pol.config_for(dataset, m, epochs=EPOCHS, seed=1))
            for m in models.MODELS}


def errors(policy, dataset):
    """Return (model, mean-elite baseline) RMS errors at new placements, in units of STD."""
    rng = np.random.default_rng(123)
    tests = rng.uniform(-0.1, 0.1, size=(20, 2))
    phis = np.stack([phi(p, rng) for p in tests])
    xis = np.stack([prior_xi(p, rng) for p in tests])
    truth = np.stack([best_residual(p) for p in tests])
    pred = policy.predict(phis, xis)
    baseline = dataset.delta.mean(axis=0)

    def rms(d):
        return float(np.sqrt(np.mean(((d - truth) / STD) ** 2)))

    return rms(pred), rms(baseline)


def test_dataset_takes_the_best_episodes_of_each_run(runs, dataset):
    assert len(dataset) == ELITES * len(runs) and dataset.feature_kind == 'file'
    assert dataset.features.shape == (len(dataset), 6) and dataset.parameter_names == NAMES
    for k, run in enumerate(runs):
        entries = RunStore(run.parent, run.name).episodes()
        best = sorted(entries, key=lambda e: -e.reward)[:ELITES]
        rows = slice(k * ELITES, (k + 1) * ELITES)
        assert dataset.rewards[rows].tolist() == [e.reward for e in best]
        assert dataset.sources[k * ELITES] == f'{run.name}:{best[0].episode}'
        np.testing.assert_allclose(dataset.delta[rows], [e.eps for e in best])
        # the side files never disturb the run's own records
        assert len(entries) == EPISODES


@pytest.mark.parametrize('model', models.MODELS)
def test_each_model_predicts_the_residual_of_a_new_placement(trained, dataset, model):
    err, baseline = errors(trained[model], dataset)
    print(f'{model}: rms error {err:.3f} std units, mean-elite baseline {baseline:.3f}')
    assert baseline > 1.0          # the residual really depends on the placement (std units)
    assert err < BOUNDS[model] * baseline
    losses = trained[model].losses
    assert len(losses) == EPOCHS and losses[-1] < 0.25 * losses[0]


def test_training_is_deterministic_for_a_seed(dataset):
    cfg = pol.config_for(dataset, 'cvae', epochs=20, seed=5)
    a, b = pol.train_policy(dataset, cfg), pol.train_policy(dataset, cfg)
    assert a.losses == b.losses
    other = pol.train_policy(dataset, pol.config_for(dataset, 'cvae', epochs=20, seed=6))
    assert other.losses != a.losses


def test_cvae_z0_is_deterministic_and_sampling_is_seeded(trained, dataset):
    pi = trained['cvae']
    phi0, xi0 = dataset.features[0], dataset.xi[0]
    mean = pi.predict(phi0, xi0)
    assert mean.shape == (8,)
    np.testing.assert_array_equal(mean, pi.predict(phi0, xi0, sample=False, seed=3))
    s1, s1_again = (pi.predict(phi0, xi0, sample=True, seed=1) for _ in range(2))
    s2 = pi.predict(phi0, xi0, sample=True, seed=2)
    np.testing.assert_array_equal(s1, s1_again)
    assert not np.allclose(s1, s2) and not np.allclose(s1, mean)
    rng = np.random.default_rng(0)
    assert not np.allclose(pi.predict(phi0, xi0, True, rng), pi.predict(phi0, xi0, True, rng))
    # deterministic ablations ignore sampling
    mlp = trained['mlp']
    assert not mlp.stochastic
    np.testing.assert_array_equal(mlp.predict(phi0, xi0, sample=True, seed=1),
                                  mlp.predict(phi0, xi0))


@pytest.mark.parametrize('model', models.MODELS)
def test_checkpoint_round_trip_gives_identical_predictions(trained, dataset, tmp_path, model):
    path = trained[model].save(tmp_path / f'{model}.pt')
    loaded = pol.load_policy(path, parameter_names=NAMES)
    assert loaded.config == trained[model].config and loaded.losses == trained[model].losses
    phis, xis = dataset.features[:7], dataset.xi[:7]
    np.testing.assert_array_equal(loaded.predict(phis, xis), trained[model].predict(phis, xis))
    np.testing.assert_array_equal(loaded.predict(phis[0], xis[0], True, 4),
                                  trained[model].predict(phis[0], xis[0], True, 4))


def _payload(path):
    return torch.load(path, weights_only=True)


def test_tampered_or_foreign_checkpoints_are_refused(trained, tmp_path):
    good = trained['cvae'].save(tmp_path / 'good.pt')

    payload = _payload(good)
    payload['config'] = payload['config'].replace('"latent_dim": 4', '"latent_dim": 5')
    torch.save(payload, tmp_path / 'edited.pt')
    with pytest.raises(ValueError, match='do not match the checksum'):
        pol.load_policy(tmp_path / 'edited.pt')

    payload = _payload(good)
    payload['tensors']['norm.xi.mean'] += 1.0
    torch.save(payload, tmp_path / 'weights.pt')
    with pytest.raises(ValueError, match='checksum'):
        pol.load_policy(tmp_path / 'weights.pt')

    # a consistent checksum over an invalid config: validated, not trusted
    payload = _payload(good)
    payload['config'] = payload['config'].replace('"model": "cvae"', '"model": "gan"')
    payload['checksum'] = checksum(payload['config'], payload['tensors'])
    torch.save(payload, tmp_path / 'model.pt')
    with pytest.raises(ValueError, match="model 'gan' is not one of"):
        pol.load_policy(tmp_path / 'model.pt')

    payload = _payload(good)
    payload['config'] = payload['config'].replace('"latent_dim": 4', '"latent_dim": 5')
    payload['checksum'] = checksum(payload['config'], payload['tensors'])
    torch.save(payload, tmp_path / 'shape.pt')
    with pytest.raises(ValueError, match='weights do not fit the config'):
        pol.load_policy(tmp_path / 'shape.pt')

    (tmp_path / 'text.pt').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='not a policy checkpoint'):
        pol.load_policy(tmp_path / 'text.pt')
    torch.save({'state_dict': {}}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='is not a deft_residual_policy checkpoint'):
        pol.load_policy(tmp_path / 'other.pt')
    with pytest.raises(FileNotFoundError):
        pol.load_policy(tmp_path / 'missing.pt')


class Exploit:
    """Unpickling this would run code: it must never be unpickled."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), 'w'))


def test_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'pwned'
    Exploit.marker = marker
    for name, dump in (('torch.pt', lambda f: torch.save({'format': pol.CHECKPOINT_FORMAT,
                                                             'x': Exploit()}, f)),
                       ('plain.pt', lambda f: pickle.dump(Exploit(), f, protocol=2))):
        with open(tmp_path / name, 'wb') as f:
            dump(f)
        with pytest.raises(ValueError, match='refused by the safe loader'):
            pol.load_policy(tmp_path / name)
        assert not marker.exists()


def test_parameter_name_mismatch_is_refused(trained, tmp_path):
    path = trained['mlp'].save(tmp_path / 'mlp.pt')
    with pytest.raises(ValueError, match=r"missing \['tau_scale'\]"):
        pol.load_policy(path, parameter_names=NAMES[:-1])
    with pytest.raises(ValueError, match='other order'):
        pol.load_policy(path, parameter_names=NAMES[1:] + NAMES[:1])
    with pytest.raises(ValueError, match='xi must be finite with 8 entries'):
        trained['mlp'].predict(np.zeros(6), np.zeros(7))
    with pytest.raises(ValueError, match='image_features must be'):
        trained['mlp'].predict(np.zeros(5), np.zeros(8))


def test_runs_without_images_train_on_xi_alone(tmp_path):
    runs = [make_run(tmp_path, f'bare{k}', pos, seed=k, features=False)
            for k, pos in enumerate(PLACEMENTS)]
    data = elite_data.build_dataset(runs, ELITES)
    assert data.feature_kind == 'none' and data.features.shape == (len(data), 0)
    pi = pol.train_policy(data, pol.config_for(data, 'mlp', epochs=EPOCHS, seed=1))
    err, baseline = errors_xi_only(pi, data)
    assert err < 0.5 * baseline     # xi's contact point carries the placement
    # saved and loaded like any other (its feature tensors are empty)
    loaded = pol.load_policy(pi.save(tmp_path / 'bare.pt'))
    np.testing.assert_array_equal(loaded.predict(None, data.xi[:5]), pi.predict(None, data.xi[:5]))
    with pytest.raises(ValueError, match='needs image features'):
        pol.config_for(data, 'direct')
    with pytest.raises(ValueError, match="features 'file': 40 of 40 elites have no side file"):
        elite_data.build_dataset(runs, ELITES, features='file')


def errors_xi_only(policy, dataset):
    rng = np.random.default_rng(123)
    tests = rng.uniform(-0.1, 0.1, size=(20, 2))
    xis = np.stack([prior_xi(p, rng) for p in tests])
    truth = np.stack([best_residual(p) for p in tests])
    pred = policy.predict(None, xis)
    rms = [float(np.sqrt(np.mean(((d - truth) / STD) ** 2)))
           for d in (pred, dataset.delta.mean(axis=0))]
    return tuple(rms)


def _scene(pos, size=48):
    """Return a table image with a red block at the placement."""
    img = np.full((size, size, 3), 200, dtype=np.uint8)
    u, v = int((pos[0] + 0.15) / 0.3 * (size - 8)), int((pos[1] + 0.15) / 0.3 * (size - 8))
    img[v:v + 8, u:u + 8] = (220, 30, 30)
    return img


def test_image_features_from_i0_files_and_weights(tmp_path):
    runs = []
    for k, pos in enumerate(PLACEMENTS[:3]):
        run = make_run(tmp_path, f'img{k}', pos, seed=k, episodes=3, features=False)
        for e in range(3):
            run_files.save_initial_image(run, e, _scene(pos))
        runs.append(run)
    assert sorted(p.name for p in (runs[0] / 'episodes').iterdir())[:2] == [
        '000000.I0.png', '000000.json']
    weights = tmp_path / 'resnet18.pt'
    torch.save(features.ResNetFeatures(init_seed=3).net.state_dict(), weights)
    extractor = features.ResNetFeatures(str(weights), image_size=64)
    data = elite_data.build_dataset(runs, 2, 'auto', extractor)
    assert data.feature_kind == 'image' and data.features.shape == (6, features.RESNET_DIM)
    cfg = pol.config_for(data, 'transformer', extractor, epochs=5)
    pi = pol.train_policy(data, cfg, extractor)
    path = pi.save(tmp_path / 'img.pt')
    loaded = pol.load_policy(path, NAMES)
    image = run_files.load_image(run_files.image_path(runs[1], 0))
    xi = data.xi[2]
    np.testing.assert_allclose(loaded.features(image), data.features[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.residual(xi, image=image), pi.residual(xi, image=image))
    # other weights are not the extractor the policy was trained with
    torch.save(features.ResNetFeatures(init_seed=4).net.state_dict(), tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='is not the one the policy was trained with'):
        pol.load_policy(path, resnet_weights=str(tmp_path / 'other.pt'))
    (tmp_path / 'bad.pt').write_bytes(pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(ValueError, match='is not a ResNet-18 state dict'):
        features.ResNetFeatures(str(tmp_path / 'bad.pt'))


def test_cli_end_to_end(runs, tmp_path, capsys):
    out = tmp_path / 'ckpt' / 'cup.pt'
    code = main([str(r) for r in runs] + ['--model', 'cvae', '--elites', str(ELITES),
                                          '--epochs', '40', '--out', str(out), '--seed', '3',
                                          '--beta', '0.5', '--latent-dim', '3'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'cvae on 40 elites of 8 run(s), 8 parameters, features file (6 values)' in printed
    assert 'epoch  1/40  loss' in printed and 'epoch 40/40  loss' in printed and 'kl' in printed
    assert f'checkpoint: {out}' in printed
    png = loss_png(out)
    assert png.name == 'cup.loss.png' and png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    pi = pol.load_policy(out, NAMES)
    assert (pi.config.model, pi.config.latent_dim, pi.config.beta) == ('cvae', 3, 0.5)
    assert len(pi.losses) == 40 and pi.config.sources[0].startswith('place0:')
    # default output: next to the first run
    assert main([str(runs[0]), '--model', 'direct', '--elites', '3', '--epochs', '2',
                 '--quiet']) == 0
    assert (runs[0] / 'policy_direct.pt').is_file()
    assert (runs[0] / 'policy_direct.loss.png').is_file()


@pytest.mark.parametrize('args,message', [
    (['{missing}'], 'run directory {missing} not found'),
    (['{run}', '--elites', '13'], 'has 12 finished episodes; 13 elites need at least as many'),
    (['{run}', '{other}', '--elites', '2'], 'has parameters'),
    (['{run}', '--features', 'image'], "features 'image': 10 of 10 elites have no side file"),
    (['{bare}', '--model', 'direct'], 'model "direct" estimates the grasp parameters'),
    (['{run}', '--epochs', '0'], '--epochs and --elites >= 1'),
    (['{run}', '--out', '{tmp}'], 'is a directory'),
    (['{run}', '--features', 'image', '--resnet-weights', '{tmp}/nope.pt'],
     'ResNet-18 weights {tmp}/nope.pt not found'),
])
def test_cli_errors(runs, tmp_path, capsys, args, message):
    other = make_run(tmp_path, 'other', (0, 0), 0, names=NAMES[:-1] + ['tau'])
    bare = make_run(tmp_path, 'bare', (0, 0), 0, features=False)
    where = dict(run=runs[0], other=other, bare=bare, missing=tmp_path / 'missing', tmp=tmp_path)
    argv = [a.format(**where) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('deft_train_policy: error: ') and '\n' not in err
    assert message.format(**where) in err


def test_cli_usage_errors_exit_2(capsys):
    assert main(['--model', 'gan', 'x']) == 2
    assert 'invalid choice' in capsys.readouterr().err
    assert main(['--help']) == 0


def test_side_file_validation(tmp_path):
    with pytest.raises(ValueError, match='H x W x 3 uint8'):
        run_files.save_initial_image(tmp_path, 0, np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match='finite 1-D'):
        run_files.save_features(tmp_path, 0, [np.nan])
    path = run_files.features_path(tmp_path, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match='not a feature vector'):
        run_files.load_feature_file(path)
    (tmp_path / 'x.png').write_bytes(b'nope')
    with pytest.raises(ValueError, match='not a readable image'):
        run_files.load_image(tmp_path / 'x.png')
    assert not any(n.startswith('.') for n in os.listdir(tmp_path / 'episodes'))
