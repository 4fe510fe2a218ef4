"""
The goal forms: every field of RunEpisode and FineTune, with the .action's defaults and choices.

A zero or an empty field means what it means in the goal (the episode node's default); the
spin boxes say so with their special-value text.
"""

import math
from typing import Optional

from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from deft_interfaces.action import FineTune, RunEpisode
from deft_rqt.model import (
    MODE_CHOICES,
    OPTIMIZER_CHOICES,
    PRIOR_CHOICES,
    REWARD_CHOICES,
    known_tasks,
    parse_floats,
)

INT32_MAX = 2 ** 31 - 1


def choice_box(choices, labels=None) -> QComboBox:
    """Return a combo box of `choices` (the values), shown with `labels` where given."""
    box = QComboBox()
    for value in choices:
        box.addItem((labels or {}).get(value, value), value)
    return box


def value_of(box: QComboBox) -> str:
    """Return the value (not the label) of a choice_box's current item."""
    return box.currentData()


def set_value(box: QComboBox, value: str) -> None:
    """Select the item whose value is `value` (left alone if there is none)."""
    index = box.findData(value)
    if index >= 0:
        box.setCurrentIndex(index)


def spin(low: int, high: int, value: int = 0, special: str = '') -> QSpinBox:
    """Return a spin box; `special` is shown for its minimum (the goal's 'node default')."""
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def task_box() -> QComboBox:
    """Return an editable task field suggesting the demonstrated tasks."""
    box = QComboBox()
    box.setEditable(True)
    box.addItems(known_tasks() or ['pick up the cup'])
    box.setToolTip('Task text (1..1000 characters); the episode node needs a demonstration of it')
    return box


class GoalForm(QWidget):
    """Fields shared by both goals: task, object prompt, run id, reward source, seed."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.task = task_box()
        self.object_prompt = QLineEdit()
        self.object_prompt.setPlaceholderText('"" = most salient; point: u, v; box: ..; label: ..')
        self.run_id = QLineEdit()
        self.reward_source = choice_box(REWARD_CHOICES, {'': '(node default)'})
        self.seed = QSpinBox()
        self.seed.setRange(-1, INT32_MAX)
        self.seed.setToolTip('Fixed seed; -1 = random')
        self.layout_.addRow('task', self.task)
        self.layout_.addRow('object_prompt', self.object_prompt)

    def common(self) -> dict:
        """Return the shared fields as goal keyword arguments."""
        return dict(task=self.task.currentText(), object_prompt=self.object_prompt.text(),
                    run_id=self.run_id.text().strip(), reward_source=value_of(self.reward_source),
                    seed=self.seed.value())


class RunEpisodeForm(GoalForm):
    """run_episode: one episode (mode prior | sample | mean | policy)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.mode = choice_box(MODE_CHOICES)
        self.run_id.setPlaceholderText('"" = a one-off episode')
        for label, widget in (('mode', self.mode), ('run_id', self.run_id),
                              ('reward_source', self.reward_source), ('seed', self.seed)):
            self.layout_.addRow(label, widget)

    def goal(self) -> RunEpisode.Goal:
        """Return the goal of the form."""
        return RunEpisode.Goal(mode=value_of(self.mode), **self.common())


class FineTuneForm(GoalForm):
    """fine_tune: N episodes, M warm-up, E elites, the distribution, the optimiser, the prior."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.episodes = spin(0, 1000, 0, '30 (default)')
        self.warmup_episodes = spin(0, 1000, 0, 'min(10, N) (default)')
        self.elites = spin(0, 1000, 0, 'node default')
        self.initial_std = QLineEdit()
        self.initial_std.setPlaceholderText("one per parameter, e.g. 0.01 0.01 ...; '' = node's")
        self.optimizer = choice_box(OPTIMIZER_CHOICES)
        self.prior = choice_box(PRIOR_CHOICES)
        self.run_id.setPlaceholderText('"" = a new timestamped run')
        self.resume = QCheckBox('continue run_id from its last finished episode')
        self.runs = QComboBox()
        self.runs.addItem('(resumable runs appear here)', None)
        self.runs.activated.connect(self.pick_run)
        for label, widget in (
                ('episodes N', self.episodes), ('warmup_episodes M', self.warmup_episodes),
                ('elites E', self.elites), ('initial_std', self.initial_std),
                ('reward_source', self.reward_source), ('optimizer', self.optimizer),
                ('prior', self.prior), ('run_id', self.run_id), ('seed', self.seed),
                ('resume', self.resume), ('resumable', self.runs)):
            self.layout_.addRow(label, widget)

    def set_runs(self, run_list) -> None:
        """List the episode node's resumable runs (a deft_interfaces/RunList)."""
        self.runs.clear()
        if not run_list.runs:
            self.runs.addItem(f'(no resumable run in {run_list.run_root})', None)
        for run in run_list.runs:
            best = '-' if math.isnan(run.best_reward) else f'{run.best_reward:.2f}'
            self.runs.addItem(f'{run.run_id}: "{run.task}", {run.episodes_done}/{run.episodes}'
                              f' done, best {best}', run)

    def pick_run(self, index: int) -> None:
        """Fill the form from a resumable run: its id, task, settings, and resume."""
        run = self.runs.itemData(index)
        if run is None:
            return
        self.task.setEditText(run.task)
        self.run_id.setText(run.run_id)
        self.episodes.setValue(run.episodes)
        set_value(self.reward_source, run.reward_source)
        set_value(self.optimizer, run.optimizer)
        set_value(self.prior, run.prior)
        self.resume.setChecked(True)

    def goal(self) -> FineTune.Goal:
        """Return the goal of the form; ValueError when initial_std is not a list of numbers."""
        std = parse_floats(self.initial_std.text())
        if std is None:
            raise ValueError(f'initial_std {self.initial_std.text()!r} is not a list of numbers')
        return FineTune.Goal(episodes=self.episodes.value(),
                             warmup_episodes=self.warmup_episodes.value(),
                             elites=self.elites.value(), initial_std=std,
                             optimizer=value_of(self.optimizer), prior=value_of(self.prior),
                             resume=self.resume.isChecked(), **self.common())
