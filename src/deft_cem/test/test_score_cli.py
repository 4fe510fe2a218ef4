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


def test_reader_reports_end_of_input_and_quit_only_when_nothing_else_is_pending():
    import io
    import time

    from deft_cem.score_cli import LineReader

    reader = LineReader(io.StringIO('great\n0.4\n'))
    deadline = time.monotonic() + 5
    while not reader.eof.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not reader.finished()  # two answers are still pending
    assert reader.readline() == 'great\n' and reader.readline() == '0.4\n'
    assert reader.finished() and reader.readline() == ''
    quitter = LineReader(io.StringIO('q\n'))
    while not quitter.eof.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert quitter.finished()


def test_latest_announcement_wins_and_a_cleared_one_means_nothing_waits():
    import queue

    from deft_cem.score_cli import latest, same_episode, waits

    q = queue.Queue()
    assert latest(q) is None
    first = EpisodeRecord(run_id='a', episode=1, reward_source='operator')
    second = EpisodeRecord(run_id='a', episode=2, reward_source='operator')
    cleared = EpisodeRecord(episode=-1, reward_source='')
    for r in (first, second):
        q.put(r)
    newest = latest(q)
    assert newest.episode == 2 and q.empty()
    assert waits(second) and not waits(cleared)
    assert same_episode(first, EpisodeRecord(run_id='a', episode=1, reward_source='operator'))
    assert not same_episode(first, second)
