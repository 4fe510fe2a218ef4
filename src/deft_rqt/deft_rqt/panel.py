"""
The DEFT operator panel: send run_episode / fine_tune, follow them, score episodes, confirm resets.

The same widget is the rqt plugin's and the standalone `deft_panel`'s; it talks to the graph only
through a RosLink, whose signals arrive on the GUI thread.
"""

import math
from typing import Optional

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from deft_common import image_codec
from deft_rqt.curve import RewardCurve
from deft_rqt.forms import FineTuneForm, RunEpisodeForm
from deft_rqt.model import DEFAULT_ELITES, RunProgress
from deft_rqt.ros_link import RosLink


def episode_label(record) -> str:
    """Name the episode of an EpisodeRecord for the operator."""
    which = f'episode {record.episode + 1}' if record.episode >= 0 else 'the one-off episode'
    return f'{which} of run {record.run_id!r} ("{record.task}")'


class DeftPanel(QWidget):
    """Goal forms on the left; progress, the reward curve and the operator's part on the right."""

    def __init__(self, link: RosLink, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName('DeftPanel')
        self.setWindowTitle('DEFT')
        self.link = link
        self.progress = RunProgress()
        self.waiting = None  # the EpisodeRecord waiting for a score, or None
        self.tabs = QTabWidget()
        self.run_form, self.tune_form = RunEpisodeForm(), FineTuneForm()
        self.tabs.addTab(self.tune_form, 'fine_tune')
        self.tabs.addTab(self.run_form, 'run_episode')
        self.send_button = QPushButton('Send goal')
        self.cancel_button = QPushButton('Cancel')
        self.cancel_button.setEnabled(False)
        self.server = QLabel('episode node: looking for it ...')
        left = QVBoxLayout()
        left.addWidget(self.tabs)
        buttons = QHBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.cancel_button)
        left.addLayout(buttons)
        left.addWidget(self.server)
        # the last prior on the camera image (affordance/prior_view): object, contacts, approach
        self.view = QLabel('no prior yet (affordance/prior_view)')
        self.view.setAlignment(Qt.AlignCenter)
        self.view.setMinimumSize(320, 240)
        left.addWidget(self.view)

        self.status = QLabel(self.progress.line())
        self.status.setWordWrap(True)
        self.std = QLabel('')
        self.std.setWordWrap(True)
        self.curve = RewardCurve()
        right = QVBoxLayout()
        right.addWidget(self.status)
        right.addWidget(self.curve, 1)
        right.addWidget(self.std)
        right.addWidget(self.operator_box())
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFixedHeight(90)
        right.addWidget(self.log)
        top = QHBoxLayout(self)
        top.addLayout(left, 2)
        top.addLayout(right, 3)

        self.send_button.clicked.connect(self.send_goal)
        self.cancel_button.clicked.connect(self.cancel_goal)
        link.feedback.connect(self.on_feedback)
        link.finished.connect(self.on_finished)
        link.accepted.connect(lambda kind: self.say(f'{kind} goal accepted'))
        link.reward_request.connect(self.on_reward_request)
        link.reset_request.connect(self.on_reset_request)
        link.runs.connect(self.tune_form.set_runs)
        link.answer.connect(self.on_answer)
        link.prior_view.connect(self.on_prior_view)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check_server)
        self.timer.start(1000)

    def on_prior_view(self, msg) -> None:
        """Show the last prior drawn on the camera image, scaled to the label."""
        try:
            rgb = np.ascontiguousarray(image_codec.to_rgb(msg))
        except ValueError as exc:
            self.say(f'prior view not shown: {exc}')
            return
        h, w, _ = rgb.shape
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()  # owns its pixels
        self.view.setPixmap(QPixmap.fromImage(image).scaled(
            self.view.width(), self.view.height(), Qt.KeepAspectRatio, Qt.SmoothTransformation))
        stamp = msg.header.stamp
        self.view.setToolTip(f'{w} x {h}, stamp {stamp.sec}.{stamp.nanosec:09d}')

    def operator_box(self) -> QGroupBox:
        """Build the operator's part: the score slider, submit, discard, and the reset button."""
        box = QGroupBox('operator')
        layout = QVBoxLayout(box)
        self.request = QLabel('no episode waits for a score')
        self.request.setWordWrap(True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(50)
        self.score = QLabel('0.50')
        self.slider.valueChanged.connect(lambda v: self.score.setText(f'{v / 100:.2f}'))
        self.submit_button = QPushButton('Submit score')
        self.discard_button = QPushButton('Discard episode')
        self.reset_label = QLabel('')
        self.reset_label.setWordWrap(True)
        self.reset_button = QPushButton('The scene is reset')
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.score)
        row.addWidget(self.submit_button)
        row.addWidget(self.discard_button)
        layout.addWidget(self.request)
        layout.addLayout(row)
        layout.addWidget(self.reset_label)
        layout.addWidget(self.reset_button)
        self.submit_button.clicked.connect(lambda: self.answer_score(False))
        self.discard_button.clicked.connect(lambda: self.answer_score(True))
        self.reset_button.clicked.connect(self.link.reset_done)
        self.set_scoring(False)
        self.reset_button.setEnabled(False)
        return box

    def say(self, text: str) -> None:
        """Append a line to the panel's log."""
        self.log.appendPlainText(text)

    def check_server(self) -> None:
        """Show whether the episode node's action servers are discovered."""
        ready = self.link.server_ready()
        self.server.setText('episode node: ' + ('ready' if ready else 'not found (namespace?)'))

    def send_goal(self) -> None:
        """Send the goal of the current tab (one goal at a time, like the episode node)."""
        form = self.tabs.currentWidget()
        kind = 'fine_tune' if form is self.tune_form else 'run_episode'
        try:
            goal = form.goal()
        except ValueError as exc:
            self.say(f'not sent: {exc}')
            return
        elites = getattr(goal, 'elites', 0) or DEFAULT_ELITES
        self.progress = RunProgress(kind=kind, run_id=goal.run_id, elites=elites,
                                    episodes=getattr(goal, 'episodes', 1) or 30)
        if kind == 'run_episode':
            self.progress.episodes = 1
        self.send_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.refresh()
        self.say(f'sending {kind}: task "{goal.task}"')
        self.link.send(kind, goal)

    def cancel_goal(self) -> None:
        """Cancel the goal under way (the hand opens, the arm goes home, episodes are kept)."""
        if self.link.cancel():
            self.say('cancel requested')

    def on_feedback(self, kind: str, fb) -> None:
        """Follow the goal's feedback."""
        if kind == 'fine_tune':
            self.progress.on_fine_tune_feedback(fb)
        else:
            self.progress.on_run_episode_feedback(fb)
        self.refresh()

    def on_finished(self, kind: str, status: str, result) -> None:
        """Show the result and free the send button."""
        self.progress.finish(status, result)
        self.send_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.say(f'{kind} {status}' + (f': {result.message}' if result is not None else ''))
        self.refresh()

    def refresh(self) -> None:
        """Redraw the status line, the std and the curve from self.progress."""
        p = self.progress
        self.status.setText(p.line())
        self.std.setText('std of D: ' + ' '.join(f'{s:.3g}' for s in p.std) if p.std else '')
        self.curve.set_rewards(p.rewards, p.episodes, p.elites if p.kind == 'fine_tune' else 0)

    def set_scoring(self, on: bool) -> None:
        """Enable the slider and its buttons only while an episode waits for a score."""
        for widget in (self.slider, self.submit_button, self.discard_button):
            widget.setEnabled(on)

    def on_reward_request(self, record) -> None:
        """Show the episode waiting for a score (reward_source '': none waits any more)."""
        if record.reward_source == '':
            self.waiting = None
            self.request.setText('no episode waits for a score')
            self.set_scoring(False)
            return
        self.waiting = record
        self.request.setText(f'{episode_label(record)} waits for your score (0 failed .. '
                             '1 fully succeeded)')
        self.set_scoring(True)

    def answer_score(self, discard: bool) -> None:
        """Send the slider's score (or discard) for the waiting episode."""
        if self.waiting is None:
            return
        reward = math.nan if discard else self.slider.value() / 100.0
        self.link.submit(self.waiting.run_id, self.waiting.episode, reward, discard)
        self.set_scoring(False)

    def on_reset_request(self, record) -> None:
        """Ask for the scene reset the episode node waits for (scene_reset: operator)."""
        if record.reward_source == '':
            self.reset_label.setText('')
            self.reset_button.setEnabled(False)
            return
        self.reset_label.setText(f'{episode_label(record)} is done: put the scene back '
                                 '(object in place, nothing in the hand), then press')
        self.reset_button.setEnabled(True)

    def on_answer(self, service: str, ok: bool, message: str) -> None:
        """Log the answer of submit_reward / reset_done; allow another try when refused."""
        self.say(f'{service}: {"accepted" if ok else "refused"}: {message}')
        if service == 'submit_reward' and not ok and self.waiting is not None:
            self.set_scoring(True)
        if service == 'reset_done' and ok:
            self.reset_button.setEnabled(False)
