"""A small reward curve: each episode's reward in [0, 1], the elites ringed, custom-painted."""

import math
from typing import Sequence

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from deft_rqt.model import elite_indices


class RewardCurve(QWidget):
    """Rewards against episode number (from 1), y axis [0, 1]; the E best episodes ringed."""

    MARGIN = 34

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rewards = []
        self.episodes = 0
        self.elites = []
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_rewards(self, rewards: Sequence[float], episodes: int, elites: int) -> None:
        """Show these rewards on an x axis of `episodes` episodes, ringing the `elites` best."""
        self.rewards = list(rewards)
        self.episodes = max(episodes, len(self.rewards), 1)
        self.elites = elite_indices(self.rewards, elites)
        self.update()

    def point(self, plot: QRectF, index: int, reward: float) -> QPointF:
        """Return where episode `index` (0-based) with `reward` is drawn in the plot rectangle."""
        span = max(self.episodes - 1, 1)
        x = plot.left() + plot.width() * (index / span if self.episodes > 1 else 0.5)
        return QPointF(x, plot.bottom() - plot.height() * min(max(reward, 0.0), 1.0))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Draw the axes, the curve, its points and the elites' rings."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), self.palette().base())
        m = self.MARGIN
        plot = QRectF(m, 10, max(self.width() - m - 12, 10), max(self.height() - m - 10, 10))
        text = self.palette().text().color()
        painter.setPen(QPen(text, 1))
        painter.drawRect(plot)
        for y in (0.0, 0.5, 1.0):
            py = plot.bottom() - plot.height() * y
            painter.drawText(QRectF(0, py - 8, m - 4, 16), Qt.AlignRight | Qt.AlignVCenter,
                             f'{y:.1f}')
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 16),
                         Qt.AlignHCenter, f'episode (1..{self.episodes}), elites ringed')
        finite = [(i, r) for i, r in enumerate(self.rewards) if math.isfinite(r)]
        painter.setPen(QPen(QColor(40, 110, 200), 2))
        for (i0, r0), (i1, r1) in zip(finite, finite[1:]):
            painter.drawLine(self.point(plot, i0, r0), self.point(plot, i1, r1))
        painter.setBrush(QColor(40, 110, 200))
        for i, r in finite:
            painter.drawEllipse(self.point(plot, i, r), 3.0, 3.0)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(QColor(220, 120, 0), 2))
        for i in self.elites:
            painter.drawEllipse(self.point(plot, i, self.rewards[i]), 7.0, 7.0)
        painter.end()
