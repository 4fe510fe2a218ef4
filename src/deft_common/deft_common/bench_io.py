"""What the benchmarks share: a process's CPU time, and merging results into the bench JSON."""

import json
import os
from pathlib import Path
from typing import Dict

from deft_common.runs import atomic_write


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of a process, s (0 if it is gone)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def merge_results(path: Path, entries: Dict[str, object]) -> None:
    """Merge entries into the bench JSON file (created if absent, its other keys kept)."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(entries)
    atomic_write(path, json.dumps(results, indent=2) + '\n')
