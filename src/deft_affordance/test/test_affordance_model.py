"""The affordance model on synthetic crops whose contact point and grasp are known."""

import json
import math
import os
from pathlib import Path
import pickle

import numpy as np
from PIL import Image
import pytest
import torch

from deft_affordance import dataset as ds
from deft_affordance import eval_cli, train_cli
from deft_affordance.model import AffordanceModel, AffordancePrediction
from deft_affordance.network import build_backbone
from deft_affordance.text_encoder import TextEncoder
from deft_affordance.training import evaluate, fit

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)  # small nets: one thread is fastest, and fair to parallel jobs

# A tiny open_clip model (same code as ViT-B-32, a few layers of width 32): builds in ~0.2 s.
TINY_CLIP = {'embed_dim': 32,
             'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'head_width': 16,
                            'patch_size': 16},
             'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2,
                          'layers': 1}}
CROP = 64                       # side of the synthetic crops, pixels
TASKS = {'pick up the cup': [0.0, 0.0, 0.0, 1.0],                           # identity
         'pour from the cup': [0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]}
SMALL = dict(num_contacts=1, deconv_channels=32, d_model=32, heads=2, layers=1)


def disc_crop(u: float, v: float, size: int = CROP) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 40, np.uint8)
    img[(xx - u) ** 2 + (yy - v) ** 2 <= (size / 12) ** 2] = (230, 60, 40)
    return img


def hand_pose(task: str) -> list:
    sign = 1.0 if task.startswith('pour') else -1.0
    return (sign * 0.01 * np.arange(45)).tolist()


def write_dataset(root: Path, n: int = 16, seed: int = 0, splits=None) -> Path:
    """Write n crops with a red disc at the contact point; the grasp follows the task."""
    rng = np.random.default_rng(seed)
    (root / 'crops').mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        u, v = rng.uniform(CROP / 6, CROP - CROP / 6, size=2)
        Image.fromarray(disc_crop(u, v)).save(root / 'crops' / f'{i:03d}.png')
        task = list(TASKS)[i % 2]
        rec = {'crop': f'crops/{i:03d}.png', 'task': task, 'contact_points': [[u, v]],
               'wrist_rotation': TASKS[task], 'hand_pose': hand_pose(task)}
        if splits:
            rec['split'] = splits[i % len(splits)]
        lines.append(json.dumps(rec))
    (root / 'manifest.jsonl').write_text('\n'.join(lines) + '\n')
    return root


@pytest.fixture(scope='module')
def clip_json(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('clip') / 'tiny-clip.json'
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp('data'))


@pytest.fixture(scope='module')
def trained(clip_json, data_dir):
    """Return a model overfitted to the 16 synthetic crops: frozen random trunk, trained heads."""
    torch.manual_seed(0)
    model = AffordanceModel.build('resnet18', clip_model=clip_json, allow_random=True,
                                  image_size=128, freeze_backbone=True, **SMALL)
    data = ds.AffordanceDataset(ds.read_manifest(data_dir), 128)
    history = fit(model, data, epochs=80, batch_size=16, lr=3e-3)
    return model, data, history


# --- training ------------------------------------------------------------------------------
def test_model_overfits_a_tiny_synthetic_dataset(trained):
    model, data, history = trained
    metrics = evaluate(model, data)
    # Baselines: the crop centre is ~13 px from the discs; one rotation for both tasks is 45 deg
    # off; the mean pose is 0.22 rad off per value. Measured over data/init seeds 0-2: contact
    # 1.6-2.4 px, wrist 0.05-0.4 deg, pose 0.13-0.32 deg per joint.
    assert history[-1]['train_loss'] < history[0]['train_loss'] / 5
    assert metrics['contact_px'] < 4.0, metrics
    assert metrics['wrist_deg'] < 2.0, metrics
    assert metrics['hand_pose_deg'] < 2.0 and metrics['hand_pose_mae'] < 0.02, metrics


def test_predict_on_a_crop_of_another_size(trained):
    model, data, _ = trained
    sample = data.samples[1]  # a training crop, shown larger: the labels scale with it
    with Image.open(sample.crop) as img:
        crop = np.asarray(img.convert('RGB').resize((96, 96), Image.BILINEAR))
    pred = model.predict(crop, sample.task)
    assert isinstance(pred, AffordancePrediction)
    assert pred.contact_points.shape == (1, 2) and pred.hand_pose.shape == (45,)
    assert pred.heatmaps.shape == (1, 32, 32)
    want = (sample.contact_points[0] + 0.5) * 1.5 - 0.5
    assert np.linalg.norm(pred.mean_contact - want) < 8.0
    assert abs(np.linalg.norm(pred.wrist_quaternion) - 1) < 1e-9
    assert np.degrees(2 * np.arccos(min(1.0, abs(pred.wrist_quaternion @ TASKS[
        'pour from the cup'])))) < 8.0
    with pytest.raises(ValueError, match='uint8'):
        model.predict(crop.astype(np.float32), 'pick up the cup')
    with pytest.raises(ValueError, match='task'):
        model.predict(crop, ' ')


# --- checkpoints ---------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_identical_predictions(trained, tmp_path):
    model, _, _ = trained
    path = model.save(tmp_path / 'model.pt')
    again = AffordanceModel.load(path, allow_random=True)
    crop = disc_crop(30.0, 22.0)
    for task in TASKS:
        a, b = model.predict(crop, task), again.predict(crop, task)
        np.testing.assert_array_equal(a.contact_points, b.contact_points)
        np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
        np.testing.assert_array_equal(a.wrist_quaternion, b.wrist_quaternion)
        np.testing.assert_array_equal(a.hand_pose, b.hand_pose)
    with pytest.raises(ValueError, match='allow_random'):
        AffordanceModel.load(path)  # trained with a random text tower: say so, do not guess


class Payload:
    """Anything that is not plain data: refused by weights_only=True."""

    def __reduce__(self):
        return (print, ('code ran while loading',))


def test_pickled_and_tampered_checkpoints_are_refused(trained, tmp_path, capsys):
    model, _, _ = trained
    evil = tmp_path / 'evil.pt'
    torch.save({'format': 'deft_affordance_model', 'payload': Payload()}, evil)
    with pytest.raises(ValueError, match='safe loader'):
        AffordanceModel.load(evil, allow_random=True)
    assert 'code ran' not in capsys.readouterr().out
    raw = tmp_path / 'raw.pkl'
    raw.write_bytes(pickle.dumps({'a': 1}, protocol=2))
    with pytest.raises(ValueError, match='not an affordance checkpoint'):
        AffordanceModel.load(raw, allow_random=True)
    path = model.save(tmp_path / 'model.pt')
    payload = torch.load(path, weights_only=True)
    payload['tensors']['heatmap.bias'] += 0.01
    torch.save(payload, tmp_path / 'edited.pt')
    with pytest.raises(ValueError, match='checksum'):
        AffordanceModel.load(tmp_path / 'edited.pt', allow_random=True)
    payload = torch.load(path, weights_only=True)
    payload['config'] = payload['config'].replace('"num_contacts": 1', '"num_contacts": 2')
    torch.save(payload, tmp_path / 'config.pt')
    with pytest.raises(ValueError, match='checksum'):
        AffordanceModel.load(tmp_path / 'config.pt', allow_random=True)
    with pytest.raises(FileNotFoundError):
        AffordanceModel.load(tmp_path / 'missing.pt')


def test_clip_weights_load_from_a_file_and_are_fingerprinted(trained, clip_json, tmp_path):
    model, _, _ = trained
    from open_clip.model import CLIP
    torch.manual_seed(5)
    other = CLIP(**TINY_CLIP)
    weights = tmp_path / 'clip.pt'
    torch.save(other.state_dict(), weights)
    text = TextEncoder(clip_json, str(weights))
    with torch.no_grad():
        want = other.encode_text(text.tokenizer(['open the drawer']), normalize=True)
    assert torch.allclose(text(['open the drawer']), want)
    path = model.save(tmp_path / 'model.pt')
    with pytest.raises(ValueError, match='not the one the model was trained with'):
        AffordanceModel.load(path, clip_weights=str(weights))
    torch.save({'x': Payload()}, tmp_path / 'evil_clip.pt')
    with pytest.raises(ValueError, match='weights_only'):
        TextEncoder(clip_json, str(tmp_path / 'evil_clip.pt'))


def test_pretrained_parts_need_a_path_unless_random_is_allowed(clip_json, tmp_path):
    with pytest.raises(ValueError, match='CLIP text tower.*allow_random'):
        AffordanceModel.build('resnet18', clip_model=clip_json, **SMALL)
    with pytest.raises(ValueError, match='unknown CLIP model'):
        AffordanceModel.build('resnet18', clip_model='no-such-clip', allow_random=True)
    import torchvision
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / 'r18.pth')
    for backbone in ('resnet18', 'resnet50', 'r3m'):
        with pytest.raises(ValueError, match='allow_random'):
            build_backbone(backbone)
    model = AffordanceModel.build('resnet18', str(tmp_path / 'r18.pth'), clip_json,
                                  allow_random=True, image_size=64, **SMALL)
    assert torch.equal(model.net.trunk[0].weight, resnet.conv1.weight)
    # an R3M checkpoint: its trunk size is recognised from the keys
    r3m = {'r3m': {'module.convnet.' + k: v for k, v in resnet.state_dict().items()
                   if not k.startswith('fc.')}}
    torch.save(r3m, tmp_path / 'r3m.pt')
    trunk, arch = build_backbone('r3m', str(tmp_path / 'r3m.pt'))
    assert arch == 'resnet18' and torch.equal(trunk.conv1.weight, resnet.conv1.weight)
    with pytest.raises(ValueError, match='not a torchvision ResNet-50'):
        build_backbone('resnet50', str(tmp_path / 'r18.pth'))
    with pytest.raises(ValueError, match='custom or Hugging Face'):
        AffordanceModel.build('resnet18', clip_model='roberta-ViT-B-32', allow_random=True)


# --- the manifest --------------------------------------------------------------------------
GOOD = {'crop': 'crops/000.png', 'task': 'pick up the cup', 'contact_points': [[10, 12]],
        'wrist_rotation': [0, 0, 0, 1], 'hand_pose': [0.0] * 45}


@pytest.mark.parametrize('change, message', [
    ('{not json', 'not JSON'),
    ({'task': None}, '"task"'),
    ({'crop': 'crops/nope.png'}, 'not found'),
    ({'crop': '../outside.png'}, 'inside the data directory'),
    ({'contact_points': [[10, 12, 3]]}, '"contact_points"'),
    ({'contact_points': [[70, 12]]}, 'outside the 64 x 64 crop'),
    ({'contact_points': []}, '"contact_points"'),
    ({'wrist_rotation': [0, 0, 0, 0]}, 'zero quaternion'),
    ({'wrist_rotation': [0, 0, 1]}, '"wrist_rotation"'),
    ({'hand_pose': [0.0] * 44}, '45 numbers'),
    ({'hand_pose': [0.0] * 44 + [float('nan')]}, 'finite'),
    ({'split': 'holdout'}, '"split"'),
    ('["a list"]', 'JSON object'),
    ({'contact_points': None}, '"contact_points"'),
])
def test_manifest_errors_name_the_line(tmp_path, change, message):
    write_dataset(tmp_path, n=1)
    if isinstance(change, str):
        bad = change
    else:
        rec = dict(GOOD, **change)
        bad = json.dumps(rec)
    (tmp_path / 'manifest.jsonl').write_text(json.dumps(GOOD) + '\n\n' + bad + '\n')
    with pytest.raises(ds.ManifestError, match=f'line 3: .*{message}'):
        ds.read_manifest(tmp_path)


def test_manifest_missing_fields_and_good_lines(tmp_path):
    write_dataset(tmp_path, n=4, splits=['train', 'val'])
    samples = ds.read_manifest(tmp_path)
    assert [s.line for s in samples] == [1, 2, 3, 4]
    assert len(ds.select_split(samples, 'val')) == 2
    (tmp_path / 'manifest.jsonl').write_text(json.dumps({'crop': 'crops/000.png'}) + '\n')
    with pytest.raises(ds.ManifestError, match='line 1: missing task, contact_points'):
        ds.read_manifest(tmp_path)
    with pytest.raises(ds.ManifestError, match='not found'):
        ds.read_manifest(tmp_path / 'nowhere')


# --- command lines -------------------------------------------------------------------------
def test_train_and_eval_cli_end_to_end(tmp_path, clip_json, capsys):
    data = write_dataset(tmp_path / 'data', n=6, splits=['train', 'train', 'val'])
    out = tmp_path / 'run' / 'model.pt'
    code = train_cli.main([str(data), '--out', str(out), '--epochs', '2', '--batch-size', '4',
                           '--lr', '1e-3', '--clip-model', clip_json, '--allow-random',
                           '--image-size', '64', '--num-contacts', '2', '--d-model', '32',
                           '--heads', '2', '--layers', '1', '--deconv-channels', '16',
                           '--no-progress'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    rows = (tmp_path / 'run' / 'model.csv').read_text().splitlines()
    assert rows[0].startswith('epoch,train_loss,train_contact') and 'eval_wrist_deg' in rows[0]
    assert len(rows) == 3
    code = eval_cli.main([str(data), str(out), '--allow-random', '--json'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result['split'] == 'val' and result['samples'] == 2
    assert set(result) >= {'contact_px', 'wrist_deg', 'hand_pose_deg'}
    with Image.open(tmp_path / 'run' / 'model.eval.png') as img:
        assert img.size[0] > 100
        key = np.asarray(img.convert('RGB'))[-20:]  # the legend strip: a green o, a red x
        assert ((key[..., 1] > 150) & (key[..., 0] < 80)).any()
        assert ((key[..., 0] > 200) & (key[..., 1] < 60)).any()


@pytest.mark.parametrize('args, message', [
    (['DATA', '--out', 'OUT', '--epochs', '0'], '--epochs'),
    (['NOWHERE', '--out', 'OUT', '--allow-random'], 'not found'),
    (['BAD', '--out', 'OUT', '--allow-random'], 'line 2'),
    (['DATA', '--out', 'OUT'], 'allow_random'),
    (['DATA', '--out', 'OUT', '--clip-weights', 'missing.pt'], 'missing.pt not found'),
    (['DATA', '--out', 'OUT', '--device', 'cuda:7', '--allow-random'], 'cuda'),
    (['DATA', '--out', 'OUT', '--image-size', '50', '--allow-random'], 'image_size'),
])
def test_train_cli_errors_exit_2_with_one_line(tmp_path, clip_json, capsys, args, message):
    data = write_dataset(tmp_path / 'data', n=2)
    bad = write_dataset(tmp_path / 'bad', n=2)
    (bad / 'manifest.jsonl').write_text(json.dumps(GOOD) + '\n{"crop": 1}\n')
    where = {'DATA': str(data), 'BAD': str(bad), 'NOWHERE': str(tmp_path / 'nowhere'),
             'OUT': str(tmp_path / 'm.pt')}
    argv = [where.get(a, a) for a in args] + ['--clip-model', clip_json, '--no-progress']
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('deft_train_affordance: error:') and message in err[-1], err


def test_eval_cli_errors_exit_2(tmp_path, capsys):
    data = write_dataset(tmp_path / 'data', n=2)
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    assert eval_cli.main([str(data), str(tmp_path / 'junk.pt')]) == 2
    assert 'not an affordance checkpoint' in capsys.readouterr().err
    assert eval_cli.main([str(data), str(tmp_path / 'none.pt')]) == 2
    assert 'not found' in capsys.readouterr().err
