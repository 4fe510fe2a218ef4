import math

import pytest

from deft_cem.score_cli import describe, parse_score
from deft_interfaces.msg import EpisodeRecord


@pytest.mark.parametrize('text,expected', [
    ('0.7\n', ('score', 0.7)), (' 1 ', ('score', 1.0)), ('0', ('score', 0.0)),
    ('d', ('discard', math.nan)), ('Q', ('quit', math.nan))])
def test_answers(text, expected):
    kind, value = parse_score(text)
    assert kind == expected[0]
    assert value == expected[1] or (math.isnan(value) and math.isnan(expected[1]))


@pytest.mark.parametrize('text,match', [('1.5', 'outside'), ('-0.1', 'outside'),
                                        ('nan', 'outside'), ('great', 'not a score')])
def test_bad_answers(text, match):
    with pytest.raises(ValueError, match=match):
        parse_score(text)


def test_describe_lists_the_largest_residuals():
    rec = EpisodeRecord(run_id='cup1', episode=4, task='pick up the cup',
                        parameter_names=['a', 'b', 'c'], eps=[0.01, -0.5, 0.2])
    text = describe(rec, top=2)
    assert "episode 4 of run 'cup1'" in text
    assert 'b -0.500, c +0.200' in text
