"""
The mobile_sam backend with random weights: the real MobileSAM code at a small input size.

No MobileSAM weights exist on this machine: the tests build a randomly initialised model, save
its state dict and load it back through the backend's loader. A random model's masks carry no
meaning, so the tests check shapes, types, the prompt plumbing and the errors. At 256 px one
image embedding takes about 0.15 s with one torch thread (the nodes' default; two threads on
the busy two-core machines were 30 times slower); importing the package about 3 s.
"""

import pickle

import numpy as np
import pytest
import torch

from deft_common.torch_threads import configure_torch_threads
from deft_perception.geometry import CameraModel
from deft_perception.mobile_sam_backend import (
    DEFAULT_INPUT_SIZE,
    MobileSamSegmenter,
    build_mobile_sam,
    mobile_sam_model,
)
from deft_perception.prompts import parse_prompt
from deft_perception.segmentation import SegmentationError, make_segmenter

W, H = 160, 120
CAM = CameraModel(120.0, 120.0, 79.5, 59.5, W, H)
SIZE = 256  # px: the encoder's input side in these tests (the default is 512)


def scene(seed=0):
    """Return (rgb, depth) of a red box 5 cm tall on a noise-textured table 0.9 m away."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[40:80, 60:110] = (200, 40, 40)
    depth = np.full((H, W), 0.9, np.float32)
    depth[40:80, 60:110] = 0.85
    return rgb, depth


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Run these tests with one torch thread, as the nodes do; restore torch's after."""
    before = torch.get_num_threads()
    assert configure_torch_threads(1, '').threads == 1
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Return (path, model): a random MobileSAM and its state dict saved by torch.save."""
    torch.manual_seed(0)
    model = mobile_sam_model(SIZE)
    path = tmp_path_factory.mktemp('mobile_sam') / 'mobile_sam.pt'
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture(scope='module')
def segmenter(weights):
    return make_segmenter('mobile_sam', mobile_sam_checkpoint=str(weights[0]),
                          mobile_sam_input_size=SIZE, min_area=50)


def spy(seg, name):
    """Record the keyword arguments of each call of seg.predictor.<name>."""
    calls = []
    real = getattr(seg.predictor, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    setattr(seg.predictor, name, wrapper)
    return calls


def test_the_loader_loads_a_saved_state_dict(weights, segmenter):
    _, source = weights
    assert isinstance(segmenter, MobileSamSegmenter) and segmenter.input_size == SIZE
    loaded = segmenter.sam.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded[key]), key
    assert segmenter.build_seconds > 0


def test_the_architecture_is_the_releases_at_any_input_size():
    from mobile_sam import build_sam_vit_t  # the package's own 1024 px MobileSAM

    release = {k: v.shape for k, v in build_sam_vit_t().state_dict().items()}
    for size in (SIZE, 1024):
        ours = {k: v.shape for k, v in mobile_sam_model(size).state_dict().items()}
        assert ours == release  # so the authors' mobile_sam.pt loads at every input size
    assert DEFAULT_INPUT_SIZE == 512


def test_a_wrong_shape_file_is_refused_naming_the_file_and_the_tensor(weights, tmp_path):
    state = weights[1].state_dict()
    key = 'mask_decoder.iou_token.weight'
    state[key] = torch.zeros(2, 128)
    path = tmp_path / 'other.pt'
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        build_mobile_sam(str(path), input_size=SIZE)
    text = str(err.value)
    assert str(path) in text and 'wrong shape' in text
    assert f'{key}: (2, 128) in the file, (1, 256) in the model' in text


class Payload:
    def __reduce__(self):
        return (print, ('pickled code ran',))


@pytest.mark.parametrize('content, message', [
    ([torch.zeros(3)], 'is not a state dict of tensors (got list)'),
    ({'image_encoder.neck.0.weight': torch.zeros(1)}, 'does not fit the model'),
    ({'model': Payload()}, 'refused by torch.load(weights_only=True)'),
])
def test_a_file_that_is_not_a_mobile_sam_state_dict_is_refused(tmp_path, content, message):
    path = tmp_path / 'not_weights.pt'
    torch.save(content, path)
    with pytest.raises(ValueError) as err:
        build_mobile_sam(str(path), input_size=SIZE)
    assert message in str(err.value) and str(path) in str(err.value)


def test_pickled_code_is_never_run(tmp_path, capsys):
    path = tmp_path / 'pickled.pt'
    path.write_bytes(pickle.dumps({'weight': Payload()}, protocol=2))
    with pytest.raises(ValueError, match='is not a plain state dict'):
        build_mobile_sam(str(path), input_size=SIZE)
    assert 'pickled code ran' not in capsys.readouterr().out


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'the mobile_sam backend needs mobile_sam_checkpoint'),
    ({'mobile_sam_checkpoint': '/nonexistent/mobile_sam.pt'},
     "MobileSAM checkpoint '/nonexistent/mobile_sam.pt' does not exist"),
    ({'sam_allow_random': True, 'mobile_sam_input_size': 500}, 'multiple of 16'),
    ({'sam_allow_random': True, 'mobile_sam_input_size': 2048}, 'from 64 to 1024'),
    ({'sam_allow_random': True, 'device': 'nodevice'}, 'not a torch device'),
])
def test_configuration_errors_say_what_to_set(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_segmenter('mobile_sam', **kwargs)


def test_point_box_and_salient_prompts_give_masks_from_one_embedding(segmenter):
    embeddings = spy(segmenter, 'set_image')
    predictions = spy(segmenter, 'predict')
    batches = spy(segmenter, 'predict_torch')
    rgb, depth = scene()
    for text in ('point: 85, 60', 'box: 60, 40, 110, 80'):
        mask = segmenter.segment(rgb, depth, CAM, parse_prompt(text, W, H))
        assert mask.shape == (H, W) and mask.dtype == bool
    try:  # random weights may propose only specks or background: an answer too
        mask = segmenter.segment(rgb, depth, CAM, parse_prompt('', W, H))
        assert mask.shape == (H, W) and mask.dtype == bool and mask.any()
    except SegmentationError as exc:
        assert 'no object proposal' in str(exc)
    assert len(embeddings) == 1 and embeddings[0][0][0].shape == (H, W, 3)
    assert segmenter.predictor.features.shape == (1, 256, SIZE // 16, SIZE // 16)
    (coords, labels), _ = batches[-1]  # salient: 3 x 3 grid + 1 point inside the box, batched
    assert coords.shape == (10, 1, 2) and labels.shape == (10, 1)
    masks, scores = segmenter.proposals(depth, CAM)
    assert masks.shape == (30, H, W) and masks.dtype == bool and scores.shape == (30,)
    (_, point), (_, box) = predictions
    np.testing.assert_array_equal(point['point_coords'], [[85.0, 60.0]])
    np.testing.assert_array_equal(point['point_labels'], [1])
    assert point['multimask_output'] is True
    np.testing.assert_array_equal(box['box'], [60.0, 40.0, 110.0, 80.0])
    assert box['multimask_output'] is False
    timing = segmenter.last_timing
    assert timing['embedding_cached'] == 1.0 and timing['set_image_s'] == 0.0


def test_a_new_frame_is_embedded_again(segmenter):
    rgb, depth = scene(1)
    segmenter.segment(rgb, depth, CAM, parse_prompt('point: 10, 10', W, H))
    assert segmenter.last_timing['embedding_cached'] == 0.0
    assert segmenter.last_timing['set_image_s'] > 0


def test_a_label_prompt_without_clip_weights_is_refused(segmenter):
    rgb, depth = scene()
    with pytest.raises(SegmentationError, match='the mobile_sam backend takes'):
        segmenter.segment(rgb, depth, CAM, parse_prompt('label: cup', W, H))


def test_a_grey_image_is_refused_with_the_backend_name(segmenter):
    _, depth = scene()
    with pytest.raises(ValueError, match='the mobile_sam backend needs an H x W x 3 uint8'):
        segmenter.segment(np.zeros((H, W), np.uint8), depth, CAM, parse_prompt('', W, H))


def test_the_bench_times_embedding_point_and_box_at_an_input_size():
    from deft_perception.bench_perception import measure_mobile_sam

    timing = measure_mobile_sam(128, repeats=1)
    assert set(timing) == {'build_s', 'set_image_s', 'predict_point_s', 'predict_box_s',
                           'image_to_mask_s'}
    assert all(v > 0 for v in timing.values())
    assert timing['image_to_mask_s'] >= timing['set_image_s']
