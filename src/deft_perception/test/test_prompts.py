import pytest

from deft_perception.prompts import Prompt, parse_prompt

W, H = 640, 480


@pytest.mark.parametrize('text', ['', '   ', None])
def test_empty_prompt_is_the_salient_object(text):
    assert parse_prompt(text, W, H) == Prompt('salient')


def test_point_prompt():
    assert parse_prompt('point: 320, 240.5', W, H) == Prompt('point', point=(320.0, 240.5))
    assert parse_prompt('  Point :0,479.9 ', W, H).point == (0.0, 479.9)


def test_box_prompt_is_clamped_to_the_image():
    assert parse_prompt('box: 10, 20, 110, 220', W, H) == Prompt('box', box=(10, 20, 110, 220))
    assert parse_prompt('box: -50, 400, 700, 900', W, H).box == (0.0, 400.0, 640.0, 480.0)


def test_label_prompt_keeps_its_text():
    assert parse_prompt('label:  red Cup: tall ', W, H) == Prompt('label', label='red Cup: tall')


@pytest.mark.parametrize('text, message', [
    ('point: 640, 10', r'point \(640, 10\) lies outside the 640x480 image'),
    ('point: 10, -1', r'point \(10, -1\) lies outside'),
    ('point: 10', 'point prompt needs 2 numbers, got 1'),
    ('point: 1, 2, 3', 'point prompt needs 2 numbers, got 3'),
    ('point: ten, 2', "point prompt needs 2 comma-separated numbers, got 'ten, 2'"),
    ('point:', "needs 2 comma-separated numbers, got ''"),
    ('point: nan, 3', "point prompt needs finite pixel coordinates, got 'nan, 3'"),
    ('box: 0, 0, inf, 10', 'box prompt needs finite pixel coordinates'),
    ('box: 100, 10, 50, 20', 'box needs u0 < u1 and v0 < v1'),
    ('box: 10, 10, 20, 10', 'box needs u0 < u1 and v0 < v1'),
    ('box: 640, 0, 700, 10', 'box lies outside the 640x480 image'),
    ('box: -20, -20, 0, 10', 'box lies outside'),
    ('box: 1, 2, 3', 'box prompt needs 4 numbers, got 3'),
    ('label:   ', 'label prompt has no text'),
    ('cup', "prompt 'cup' has no kind; use \"point: u, v\""),
    ('circle: 1, 2', "unknown prompt kind 'circle'; expected point, box or label"),
])
def test_malformed_prompts_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt(text, W, H)
