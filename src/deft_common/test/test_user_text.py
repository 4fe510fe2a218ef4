from deft_common.user_text import shown


def test_short_text_is_quoted_whole():
    assert shown('cup') == "'cup'"
    assert shown('') == "''"
    assert shown(7) == "'7'"


def test_long_text_is_cut_with_its_length():
    text = 'x' * 100_000
    out = shown(text)
    assert out == repr('x' * 60) + '... (100000 characters)'
    assert len(out) < 100
    assert shown('abcdef', limit=3) == "'abc'... (6 characters)"
