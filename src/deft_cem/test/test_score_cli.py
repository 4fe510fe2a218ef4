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


class Terminal:
    """The ScoreTerminal's interface without DDS: queues in, calls recorded out."""

    def __init__(self, reset_after_score=None):
        import queue

        self.requests, self.resets = queue.Queue(), queue.Queue()
        self.sent, self.reset_calls = [], 0
        self.reset_after_score = reset_after_score

    def submit(self, record, kind, value):
        self.sent.append((record.run_id, record.episode, kind, value))
        self.requests.put(EpisodeRecord(episode=-1, reward_source=''))  # nothing waits now
        if self.reset_after_score is not None:  # the node then asks for the scene reset
            self.resets.put(self.reset_after_score)
        return True, f'episode {record.episode} of run {record.run_id!r}: {kind}'

    def reset_done(self):
        self.reset_calls += 1
        self.resets.put(EpisodeRecord(episode=-1, reward_source=''))
        return True, "scene reset after episode 2 of run 'cup': continuing"


def run_loop(node, text):
    import io

    from deft_cem.score_cli import loop

    out = io.StringIO()
    assert loop(node, io.StringIO(text), out, alive=lambda: True) == 0
    return out.getvalue()


def test_score_then_reset_done_on_enter():
    done = EpisodeRecord(run_id='cup', episode=2, task='t', reward=0.6,
                         reward_source='operator')
    node = Terminal(reset_after_score=done)
    node.requests.put(EpisodeRecord(run_id='cup', episode=2, task='t', reward=math.nan,
                                    reward_source='operator'))
    text = run_loop(node, '0.6\n\n')
    assert node.sent == [('cup', 2, 'score', 0.6)] and node.reset_calls == 1
    assert "episode 2 of run 'cup' is done, reward 0.600: put the scene back" in text
    assert 'press Enter when the scene is reset' in text
    assert text.index('sent: episode 2') < text.index('press Enter')
    assert "sent: scene reset after episode 2 of run 'cup'" in text


def test_quit_at_the_reset_prompt_does_not_confirm_and_stale_resets_are_skipped():
    node = Terminal()
    node.resets.put(EpisodeRecord(run_id='cup', episode=1, reward=0.2, reward_source='sim'))
    assert 'is done' in run_loop(node, 'q\n') and node.reset_calls == 0
    # a reset that stopped waiting before the terminal looked is not asked for
    node = Terminal()
    node.resets.put(EpisodeRecord(run_id='cup', episode=1, reward=0.2, reward_source='sim'))
    node.resets.put(EpisodeRecord(episode=-1, reward_source=''))
    assert 'is done' not in run_loop(node, '') and node.reset_calls == 0


def test_describe_reset_of_a_one_off_episode():
    from deft_cem.score_cli import describe_reset

    text = describe_reset(EpisodeRecord(run_id='', episode=-1, reward=math.nan,
                                        reward_source='sim'))
    assert text.startswith("one-off episode of run '' is done: put the scene back")
