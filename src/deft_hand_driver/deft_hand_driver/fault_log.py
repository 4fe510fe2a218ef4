"""
What to log about a repeated fault: one line per change, its counts in a periodic summary.

A control loop meets the same fault at every step (a port that is gone fails 100 times a
second). `FaultLog` turns the stream of outcomes into a few lines: an error when the fault
changes (by its key, which holds no counts or countdowns), a warning every `period` seconds
while it lasts and an info line when it ends, both with the counts; and, with no fault going on,
a warning every `period` with the failures the retries absorbed, if there were any. Pure: the
caller logs the lines, with its own clock.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

Line = Tuple[str, str]  # (severity: 'error' | 'warning' | 'info', text)


def count_text(counts: Dict[str, int]) -> str:
    """Return 'corrupt replies: 20, no answer: 3' (the non-zero counts, largest first)."""
    items = sorted(((n, kind) for kind, n in counts.items() if n > 0), reverse=True)
    return ', '.join(f'{kind}: {n}' for n, kind in items)


def _delta(now: Dict[str, int], before: Dict[str, int]) -> Dict[str, int]:
    return {kind: n - before.get(kind, 0) for kind, n in now.items() if n > before.get(kind, 0)}


@dataclass
class FaultLog:
    """The log of one repeated fault; `failed` and `ok` return the lines to log now."""

    what: str = 'hand bus'
    period: float = 10.0
    key: str = ''  # the fault going on ('' = none)
    since: float = 0.0  # when the outage began (a change of fault within it does not reset it)
    steps: int = 0  # failed steps of the outage
    _summary_at: Optional[float] = None
    _base: Dict[str, int] = field(default_factory=dict)  # counts the next summary starts from
    _last_ok: Dict[str, int] = field(default_factory=dict)  # counts after the last good step

    def failed(self, key: str, message: str, now: float, counts: Dict[str, int]) -> List[Line]:
        """Record a failed step (`counts`: failures by kind so far); return the lines to log."""
        lines: List[Line] = []
        if key != self.key:
            lines.append(('error', message))
            if not self.key:  # an outage begins
                self.since, self.steps, self._base = now, 0, self._last_ok
            self.key, self._summary_at = key, now
        elif now - self._summary_at >= self.period:
            lines.append(('warning', f'{self.what} still failing after {now - self.since:.0f} s '
                          f'({self.steps} failed steps{self._counted(counts)}): {key}'))
            self._summary_at = now
        self.steps += 1
        return lines

    def ok(self, now: float, counts: Dict[str, int]) -> List[Line]:
        """Record a good step: the end of an outage, or now and then the failures absorbed."""
        lines: List[Line] = []
        if self._summary_at is None:
            self._summary_at, self._base = now, counts
        if self.key:
            lines.append(('info', f'{self.what} answering again after {now - self.since:.1f} s '
                          f'({self.steps} failed steps{self._counted(counts)})'))
            self.key, self._summary_at = '', now
        elif now - self._summary_at >= self.period:
            absorbed = count_text(_delta(counts, self._base))
            if absorbed:
                lines.append(('warning', f'{self.what}: {absorbed} in the last '
                              f'{now - self._summary_at:.0f} s, absorbed by retries'))
            self._summary_at, self._base = now, counts
        self._last_ok = counts
        return lines

    def _counted(self, counts: Dict[str, int]) -> str:
        """Return '; corrupt replies: 20' for the counts since the last such text."""
        text = count_text(_delta(counts, self._base))
        self._base = counts
        return f'; {text}' if text else ''
