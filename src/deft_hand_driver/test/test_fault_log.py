"""FaultLog: one line per change of a repeated fault, counts in a periodic summary."""

from deft_hand_driver.fault_log import FaultLog, count_text


def run(log, steps, t0, dt, key=None, counts=None, message=None):
    """Feed `steps` outcomes dt apart (a failure when key is given); return (lines, time)."""
    lines, t = [], t0
    for i in range(steps):
        c = counts(i) if callable(counts) else (counts or {})
        if key is None:
            lines += log.ok(t, c)
        else:
            text = message(i) if message else f'hand bus X: {key}'
            lines += log.failed(key, text, t, c)
        t += dt
    return lines, t


def test_a_fault_repeated_300_times_with_a_countdown_logs_one_line():
    log = FaultLog(period=10.0)
    _, t = run(log, 5, 0.0, 0.01)
    # the message changes at every step (a countdown); the key does not
    lines, t = run(log, 300, t, 0.01, key='port gone',
                   message=lambda i: f'lost; reconnecting in {2.0 - i * 0.01:.2f} s')
    assert lines == [('error', 'lost; reconnecting in 2.00 s')]
    lines, t = run(log, 3, t, 0.01)
    assert len(lines) == 1 and lines[0][0] == 'info'
    assert lines[0][1].startswith('hand bus answering again after 3.0 s (300 failed steps')


def test_a_change_of_fault_is_a_line_and_a_summary_comes_with_the_counts():
    log = FaultLog(period=10.0)
    run(log, 1, 0.0, 0.1, counts={'late replies': 1})
    lines, t = run(log, 50, 0.1, 0.1, key='corrupt replies',
                   counts=lambda i: {'late replies': 1, 'corrupt replies': 3 * (i + 1)})
    assert lines == [('error', 'hand bus X: corrupt replies')]
    lines, t = run(log, 60, t, 0.1, key='corrupt replies',
                   counts=lambda i: {'late replies': 1, 'corrupt replies': 150 + 3 * (i + 1)})
    assert len(lines) == 1 and lines[0][0] == 'warning'
    assert lines[0][1].startswith('hand bus still failing after 10 s (')
    assert 'corrupt replies: ' in lines[0][1] and 'late replies' not in lines[0][1]
    assert lines[0][1].endswith('): corrupt replies')
    lines, t = run(log, 2, t, 0.1, key='no answer [5]')
    assert lines == [('error', 'hand bus X: no answer [5]')]
    lines, _ = run(log, 1, t, 0.1, counts={'late replies': 1, 'corrupt replies': 400})
    assert len(lines) == 1 and lines[0][0] == 'info' and 'answering again after 11.2 s' in \
        lines[0][1]


def test_failures_absorbed_by_retries_are_summed_up_now_and_then():
    log = FaultLog(period=10.0)
    lines, t = run(log, 150, 0.0, 0.1, counts=lambda i: {'late replies': i // 50})
    assert lines == [('warning', 'hand bus: late replies: 2 in the last 10 s, '
                                 'absorbed by retries')]
    lines, _ = run(log, 150, t, 0.1, counts={'late replies': 2})
    assert lines == []  # nothing new: nothing said


def test_count_text():
    assert count_text({}) == ''
    assert count_text({'no answer': 3, 'corrupt replies': 20, 'late replies': 0}) == \
        'corrupt replies: 20, no answer: 3'
