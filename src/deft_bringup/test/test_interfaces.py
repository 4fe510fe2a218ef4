"""Every field of every deft_interfaces message, service and action is documented."""

from pathlib import Path
import re
from typing import List, Tuple

import pytest

INTERFACES = Path(__file__).resolve().parents[2] / 'deft_interfaces'
FILES = sorted(p for d in ('msg', 'srv', 'action') for p in (INTERFACES / d).glob('*.*'))
FIELD = re.compile(r'^(?P<type>[A-Za-z_][\w/]*(\[\d*\]|\[<=\d+\])?)\s+(?P<name>[a-z]\w*)'
                   r'(\s+(?P<default>\S.*))?$')


def undocumented(text: str) -> Tuple[List[str], List[Tuple[str, str, str, int]]]:
    """
    Return (fields without a comment, every field as (name, default, its comment, section)).

    The section is 0 for a request or goal, 1 for a response or result, 2 for feedback.
    A field's comment is its own trailing `# ...` or the comment lines right above it (no blank
    line between). Constants (`TYPE NAME=value`) and the `---` separators are not fields.
    """
    missing, fields = [], []
    above: List[str] = []
    section = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith('#'):
            above.append(line.lstrip('#').strip())
            continue
        if not line or line == '---':
            section += line == '---'
            above = []
            continue
        code, _, trailing = line.partition('#')
        code = code.strip()
        if '=' in code.split()[1]:  # a constant
            above = []
            continue
        match = FIELD.match(code)
        assert match, f'not a field line: {raw!r}'
        comment = ' '.join([a for a in above if a] + [trailing.strip()]).strip()
        fields.append((match['name'], match['default'] or '', comment, section))
        if not comment:
            missing.append(match['name'])
        above = []
    return missing, fields


def test_every_interface_file_is_found():
    names = {p.name for p in FILES}
    assert {'EpisodeRecord.msg', 'GraspPrior.msg', 'Segment.srv', 'FineTune.action',
            'RunEpisode.action', 'ExecuteGrasp.action', 'HandGrasp.action', 'RunSummary.msg',
            'RunList.msg'} <= names
    assert len(FILES) == 13


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_every_field_has_a_comment(path):
    missing, fields = undocumented(path.read_text())
    assert fields, f'{path.name}: no fields parsed'
    assert not missing, f'{path.name}: fields without a comment: {", ".join(missing)}'


def test_the_checker_catches_an_undocumented_field():
    text = ('# header\n\n# documented\nint32 a\nint32 b\nuint16 C=1\n---\n'
            'float64 c  # trailing\n# comment\n\nbool d\nint64 e -1\n')
    missing, fields = undocumented(text)
    assert missing == ['b', 'd', 'e']
    assert [f[0] for f in fields] == ['a', 'b', 'c', 'd', 'e'] and fields[4][1] == '-1'
    assert [f[3] for f in fields] == [0, 0, 1, 1, 1]


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_seed_comments_tell_the_real_default(path):
    """A seed without an explicit default is 0: its comment must not suggest -1 is the default."""
    for name, default, comment, section in undocumented(path.read_text())[1]:
        if name != 'seed' or section != 0:
            continue
        if not default:
            assert 'default 0' in comment and '-1' in comment, (path.name, comment)
        else:
            assert default.split()[0] in comment or 'random' in comment, (path.name, comment)
