"""
Screenshots of the panel for the docs: `make screenshots` writes docs/img/panel_*.png.

The panel tests call shoot() at the moments worth showing (a fine_tune under way, an episode
waiting for the operator's score); it writes only when DEFT_SCREENSHOTS names a folder, so the
pictures are of the real graph, not of a mock-up.
"""

import os
from pathlib import Path
from typing import Optional

VARIABLE = 'DEFT_SCREENSHOTS'


def save_screenshot(widget, path) -> Path:
    """Render `widget` (also offscreen) into a PNG at `path`; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path)):
        raise OSError(f'could not write {path}')
    return path


def shoot(widget, name: str) -> Optional[Path]:
    """Save `widget` as $DEFT_SCREENSHOTS/panel_<name>.png when that variable is set."""
    folder = os.environ.get(VARIABLE)
    return save_screenshot(widget, Path(folder) / f'panel_{name}.png') if folder else None
