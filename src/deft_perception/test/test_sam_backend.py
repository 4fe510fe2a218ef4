"""
The sam backend with random weights: shapes, caching, safe checkpoint loading, CLIP ranking.

A random model's masks carry no meaning, so the tests check the pipeline's mechanics. One
vit_b image embedding costs about 40 s on two CPU cores, so vit_b embeds one frame only; the
caching across frames and the embedding identity after loading use a shrunk SAM (the real SAM
code, 5M parameters, about 2 s per embedding).
"""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from deft_perception.geometry import CameraModel
from deft_perception.prompts import parse_prompt
from deft_perception.sam_backend import SamSegmenter, build_sam
from deft_perception.sam_family import (
    ClipRanker,
    load_state_dict_file,
    salience,
    stability_score,
)
from deft_perception.segmentation import SegmentationError, make_segmenter

W, H = 128, 96
CAM = CameraModel(100.0, 100.0, 63.5, 47.5, W, H)


def frame(seed=0):
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 0.9)
    depth[30:60, 40:80] = 0.85  # a box 5 cm tall on the table
    return rgb, depth


def tiny_sam(seed):
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(seed)
    return _build_sam(64, 2, 2, [1])  # 5M parameters


def count_set_image(seg):
    calls = []
    real = seg.predictor.set_image

    def spy(image, *args, **kwargs):
        calls.append(image.shape)
        return real(image, *args, **kwargs)

    seg.predictor.set_image = spy
    return calls


@pytest.fixture(scope='module')
def vit_b():
    torch.manual_seed(0)
    seg = make_segmenter('sam', sam_model_type='vit_b', sam_allow_random=True, min_area=50)
    seg.grid = 2  # 2 x 2 + 1 (depth) salient proposals: each costs one mask decoder pass
    return seg


@pytest.fixture(scope='module')
def tiny():
    return SamSegmenter(sam=tiny_sam(0))


def test_vit_b_random_runs_point_box_and_salient_on_one_embedding(vit_b):
    assert sum(p.numel() for p in vit_b.sam.parameters()) > 90e6 and vit_b.build_seconds > 0
    calls = count_set_image(vit_b)
    rgb, depth = frame()
    for text in ('point: 60, 45', 'box: 40, 30, 80, 60', ''):
        mask = vit_b.segment(rgb, depth, CAM, parse_prompt(text, W, H))
        assert mask.shape == (H, W) and mask.dtype == bool
    assert calls == [(H, W, 3)]
    assert vit_b.last_timing['embedding_cached'] == 1.0 and vit_b.last_timing['predict_s'] > 0


def test_vit_b_checkpoint_written_by_torch_save_loads_back(vit_b, tmp_path):
    path = tmp_path / 'sam_vit_b.pth'
    torch.save(vit_b.sam.state_dict(), path)
    loaded = build_sam('vit_b', str(path))
    for (k, a), (k2, b) in zip(vit_b.sam.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_the_embedding_is_cached_per_frame(tiny):
    calls = count_set_image(tiny)
    rgb, depth = frame(0)
    tiny.segment(rgb, depth, CAM, parse_prompt('point: 10, 10', W, H))
    tiny.segment(rgb.copy(), depth, CAM, parse_prompt('box: 0, 0, 50, 50', W, H))  # same bytes
    assert len(calls) == 1 and tiny.last_timing['set_image_s'] == 0.0
    other, _ = frame(1)
    mask = tiny.segment(other, depth, CAM, parse_prompt('point: 10, 10', W, H))
    assert len(calls) == 2 and mask.shape == (H, W) and mask.dtype == bool
    assert tiny.last_timing['embedding_cached'] == 0.0 and tiny.last_timing['set_image_s'] > 0


def test_a_saved_state_dict_gives_identical_embeddings(tmp_path):
    source, target = tiny_sam(1), tiny_sam(2)
    path = tmp_path / 'tiny.pth'
    torch.save(source.state_dict(), path)
    load_state_dict_file(target, str(path), 'SAM tiny')
    rgb, _ = frame()
    a, b = SamSegmenter(sam=source), SamSegmenter(sam=target)
    a.set_frame(rgb)
    b.set_frame(rgb)
    assert torch.equal(a.predictor.features, b.predictor.features)


class Payload:
    def __reduce__(self):
        return (print, ('pickled code ran',))


def test_pickled_objects_wrong_keys_and_missing_files_are_refused(tmp_path):
    model = torch.nn.Linear(2, 2)
    pickled = tmp_path / 'pickled.pth'
    pickled.write_bytes(pickle.dumps({'weight': Payload()}, protocol=2))
    with pytest.raises(ValueError, match='is not a plain state dict of tensors'):
        load_state_dict_file(model, str(pickled), 'SAM')
    saved_object = tmp_path / 'object.pth'
    torch.save({'weight': Payload()}, saved_object)
    with pytest.raises(ValueError, match=r'refused by torch.load\(weights_only=True\)'):
        load_state_dict_file(model, str(saved_object), 'SAM')
    wrong = tmp_path / 'wrong.pth'
    torch.save({'encoder.weight': torch.zeros(2, 2)}, wrong)
    with pytest.raises(ValueError, match=r"does not fit the model: 2 missing keys \['bias', "
                                         r"'weight'\], 1 unexpected keys"):
        load_state_dict_file(model, str(wrong), 'SAM')
    shape = tmp_path / 'shape.pth'
    torch.save({'weight': torch.zeros(3, 2), 'bias': torch.zeros(2)}, shape)
    with pytest.raises(ValueError, match=r'1 tensors of the wrong shape .*weight: \(3, 2\) in '
                                         r'the file, \(2, 2\) in the model'):
        load_state_dict_file(model, str(shape), 'SAM')
    with pytest.raises(ValueError, match='does not exist'):
        load_state_dict_file(model, str(tmp_path / 'nope.pth'), 'SAM')


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'the sam backend needs sam_checkpoint'),
    ({'sam_model_type': 'vit_x', 'sam_allow_random': True}, "sam_model_type 'vit_x'"),
    ({'sam_checkpoint': '/nonexistent/sam.pth'}, 'does not exist'),
    ({'sam_allow_random': True, 'device': 'cuda:7'} if not torch.cuda.is_available() else
     {'sam_allow_random': True, 'device': 'nodevice'}, 'device'),
])
def test_configuration_errors_say_what_to_set(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_segmenter('sam', **kwargs)


def test_a_label_prompt_without_clip_weights_is_refused(tiny):
    rgb, depth = frame()
    with pytest.raises(SegmentationError, match='a label prompt needs CLIP weights'):
        tiny.segment(rgb, depth, CAM, parse_prompt('label: cup', W, H))


def test_salience_drops_specks_and_background_and_prefers_the_support_plane():
    area = np.array([0.0001, 0.1, 0.1, 0.9])
    stability = np.array([1.0, 0.8, 0.8, 1.0])
    iou = np.array([1.0, 0.8, 0.8, 1.0])
    score = salience(area, stability, iou)
    assert score[0] == 0 and score[3] == 0 and score[1] == score[2] > 0
    with_plane = salience(area, stability, iou, on_plane=np.array([0, 1.0, 0.0, 0]))
    assert with_plane[1] == pytest.approx(4 * with_plane[2])
    assert salience(np.array([0.04]), np.array([0.0]), np.array([-2.0]))[0] > 0  # size orders


def test_stability_score_is_segment_anythings():
    from segment_anything.utils.amg import calculate_stability_score

    logits = torch.randn(5, 16, 16) * 3
    logits[0] = 5.0  # every pixel in both masks
    np.testing.assert_allclose(stability_score(logits, 0.0, 1.0),
                               calculate_stability_score(logits, 0.0, 1.0), rtol=1e-6)
    assert stability_score(torch.full((1, 4, 4), -9.0), 0.0)[0] == 1.0  # empty: stable, not NaN


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp('clip')
    (folder / 'deft-tiny-clip.json').write_text(json.dumps({
        'embed_dim': 32,
        'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 64, 'patch_size': 16},
        'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 64, 'heads': 2,
                     'layers': 2}}))
    open_clip.add_model_config(folder / 'deft-tiny-clip.json')
    torch.manual_seed(0)
    weights = folder / 'tiny_clip.pth'
    torch.save(open_clip.create_model('deft-tiny-clip', pretrained=None).state_dict(), weights)
    return str(weights)


def test_clip_ranking_is_a_deterministic_permutation(tiny_clip):
    ranker = ClipRanker('deft-tiny-clip', tiny_clip)
    again = ClipRanker('deft-tiny-clip', tiny_clip)  # loads the same weights
    crops = np.random.default_rng(3).integers(0, 256, (6, ranker.size, ranker.size, 3),
                                              dtype=np.uint8)
    order, sim = ranker.rank(crops, 'red cup')
    assert sorted(order) == list(range(6)) and np.all(np.diff(sim[order]) <= 0)
    np.testing.assert_array_equal(again.rank(crops, 'red cup')[0], order)
    assert np.all(np.abs(sim) <= 1 + 1e-6)
    with pytest.raises(ValueError, match='clip_weights is empty'):
        ClipRanker('deft-tiny-clip', '')


def test_a_label_prompt_picks_a_proposal_by_clip(tiny_clip):
    seg = SamSegmenter(sam=tiny_sam(0), clip_model='deft-tiny-clip', clip_weights=tiny_clip,
                       grid=2)
    rgb, depth = frame()
    mask = seg.segment(rgb, depth, CAM, parse_prompt('label: cup', W, H))
    assert mask.shape == (H, W) and mask.dtype == bool and mask.any()
    assert list(seg.clip.text_cache) == ['cup']  # the proposals were ranked by CLIP


def test_fake_and_depth_backends_do_not_import_torch():
    code = ('import sys; from deft_perception.segmentation import make_segmenter; '
            "make_segmenter('fake'); make_segmenter('depth'); "
            "import deft_perception.bench_perception; print('torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == 'False'


def test_measure_latency_of_the_weight_free_backends():
    from deft_perception.bench_perception import measure_latency

    for backend in ('fake', 'depth'):
        assert 0 < measure_latency(backend, repeats=2) < 5.0
    with pytest.raises(ValueError, match='unknown'):
        measure_latency('nope', 1)
