"""Object prompts: "", "point: u, v", "box: u0, v0, u1, v1", "label: text"."""

from dataclasses import dataclass
import math
from typing import Optional, Tuple


@dataclass(frozen=True)
class Prompt:
    """A parsed prompt; pixel coordinates of the colour image."""

    kind: str  # salient | point | box | label
    point: Optional[Tuple[float, float]] = None
    box: Optional[Tuple[float, float, float, float]] = None
    label: str = ''


def _numbers(text: str, count: int, kind: str):
    parts = [p.strip() for p in text.split(',')]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f'{kind} prompt needs {count} comma-separated numbers, got '
                         f'{text.strip()!r}') from None
    if len(values) != count:
        raise ValueError(f'{kind} prompt needs {count} numbers, got {len(values)}')
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f'{kind} prompt needs finite pixel coordinates, got {text.strip()!r}')
    return values


def parse_prompt(text: str, width: int, height: int) -> Prompt:
    """Parse a prompt and check it against the image size; ValueError saying what is wrong."""
    text = (text or '').strip()
    if not text:
        return Prompt('salient')
    kind, sep, rest = text.partition(':')
    kind = kind.strip().lower()
    if not sep:
        raise ValueError(f'prompt {text!r} has no kind; use "point: u, v", '
                         '"box: u0, v0, u1, v1", "label: <text>" or "" for the salient object')
    if kind == 'point':
        u, v = _numbers(rest, 2, 'point')
        if not (0 <= u < width and 0 <= v < height):
            raise ValueError(f'point ({u:g}, {v:g}) lies outside the {width}x{height} image')
        return Prompt('point', point=(u, v))
    if kind == 'box':
        u0, v0, u1, v1 = _numbers(rest, 4, 'box')
        if not (u0 < u1 and v0 < v1):
            raise ValueError('box needs u0 < u1 and v0 < v1')
        if u1 <= 0 or v1 <= 0 or u0 >= width or v0 >= height:
            raise ValueError(f'box lies outside the {width}x{height} image')
        return Prompt('box', box=(max(0.0, u0), max(0.0, v0), min(float(width), u1),
                                  min(float(height), v1)))
    if kind == 'label':
        if not rest.strip():
            raise ValueError('label prompt has no text')
        return Prompt('label', label=rest.strip())
    raise ValueError(f'unknown prompt kind {kind!r}; expected point, box or label')
