"""The panel's widgets without a graph: forms to goals, the operator's part, plugin metadata."""

import math
from pathlib import Path
import xml.etree.ElementTree as ET

from qtpy.QtCore import QObject, Qt, Signal

from deft_interfaces.msg import EpisodeRecord, RunList, RunSummary
from deft_rqt.forms import set_value
from deft_rqt.panel import DeftPanel
from deft_rqt.screenshots import save_screenshot, shoot

PACKAGE = Path(__file__).resolve().parents[1]


class StandInLink(QObject):
    """RosLink's signals and calls, recorded instead of sent."""

    feedback = Signal(str, object)
    finished = Signal(str, str, object)
    accepted = Signal(str)
    reward_request = Signal(object)
    reset_request = Signal(object)
    runs = Signal(object)
    answer = Signal(str, bool, str)
    prior_view = Signal(object)

    def __init__(self):
        super().__init__()
        self.calls = []

    def server_ready(self):
        return False

    def send(self, kind, goal):
        self.calls.append(('send', kind, goal))

    def cancel(self):
        self.calls.append(('cancel',))
        return True

    def submit(self, run_id, episode, reward, discard):
        self.calls.append(('submit', run_id, episode, reward, discard))

    def reset_done(self):
        self.calls.append(('reset_done',))


def make_panel(qtbot):
    link = StandInLink()
    panel = DeftPanel(link)
    qtbot.addWidget(panel)
    return panel, link


def test_forms_make_goals_with_every_field(qtbot):
    panel, link = make_panel(qtbot)
    form = panel.tune_form
    form.task.setEditText('pour the water')
    form.episodes.setValue(12)
    form.warmup_episodes.setValue(4)
    form.elites.setValue(3)
    form.initial_std.setText('0.01, 0.02')
    set_value(form.optimizer, 'cmaes')
    set_value(form.prior, 'heuristic')
    set_value(form.reward_source, 'operator')
    form.run_id.setText('r1')
    form.seed.setValue(-1)
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    (_, kind, goal), = link.calls
    assert kind == 'fine_tune' and goal.task == 'pour the water' and goal.episodes == 12
    assert (goal.warmup_episodes, goal.elites, list(goal.initial_std)) == (4, 3, [0.01, 0.02])
    assert (goal.optimizer, goal.prior, goal.reward_source) == ('cmaes', 'heuristic', 'operator')
    assert (goal.run_id, goal.seed, goal.resume) == ('r1', -1, False)
    assert panel.curve.episodes == 12 and panel.progress.elites == 3
    panel.tabs.setCurrentWidget(panel.run_form)
    assert not panel.send_button.isEnabled()  # one goal at a time
    panel.link.finished.emit('fine_tune', 'rejected', None)
    assert panel.send_button.isEnabled() and 'rejected' in panel.status.text()
    set_value(panel.run_form.mode, 'sample')
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    goal = link.calls[-1][2]
    assert link.calls[-1][1] == 'run_episode' and goal.mode == 'sample'
    assert goal.reward_source == ''  # '(node default)'


def test_a_bad_initial_std_is_not_sent(qtbot):
    panel, link = make_panel(qtbot)
    panel.tune_form.initial_std.setText('0.1 lots')
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    assert link.calls == [] and 'not a list of numbers' in panel.log.toPlainText()


def test_a_resumable_run_fills_the_form(qtbot):
    panel, _ = make_panel(qtbot)
    runs = RunList(run_root='/runs', runs=[RunSummary(
        run_id='old', task='open the drawer', episodes_done=4, episodes=10, best_reward=0.5,
        reward_source='operator', optimizer='cmaes', prior='heuristic')])
    panel.link.runs.emit(runs)
    form = panel.tune_form
    assert form.runs.itemText(0) == 'old: "open the drawer", 4/10 done, best 0.50'
    form.pick_run(0)
    goal = form.goal()
    assert (goal.run_id, goal.task, goal.episodes, goal.resume) == (
        'old', 'open the drawer', 10, True)
    assert (goal.reward_source, goal.optimizer, goal.prior) == ('operator', 'cmaes', 'heuristic')
    panel.link.runs.emit(RunList(run_root='/runs'))
    assert form.runs.itemText(0) == '(no resumable run in /runs)'


def test_the_operator_scores_discards_and_confirms_resets(qtbot):
    panel, link = make_panel(qtbot)
    assert not panel.submit_button.isEnabled() and not panel.reset_button.isEnabled()
    waiting = EpisodeRecord(run_id='r', episode=2, task='pick up the cup',
                            reward_source='operator', reward=math.nan)
    panel.link.reward_request.emit(waiting)
    assert panel.submit_button.isEnabled() and 'episode 3 of run' in panel.request.text()
    panel.slider.setValue(35)
    qtbot.mouseClick(panel.submit_button, Qt.LeftButton)
    assert link.calls[-1] == ('submit', 'r', 2, 0.35, False)
    assert not panel.submit_button.isEnabled()
    panel.link.answer.emit('submit_reward', False, 'not now')  # refused: try again
    assert panel.submit_button.isEnabled()
    qtbot.mouseClick(panel.discard_button, Qt.LeftButton)
    assert link.calls[-1][4] is True
    panel.link.reward_request.emit(EpisodeRecord())  # nothing waits any more
    assert not panel.submit_button.isEnabled()
    panel.link.reset_request.emit(waiting)
    assert panel.reset_button.isEnabled() and 'put the scene back' in panel.reset_label.text()
    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)
    assert link.calls[-1] == ('reset_done',)
    panel.link.answer.emit('reset_done', True, 'scene reset')
    assert not panel.reset_button.isEnabled()


def test_screenshots(qtbot, tmp_path, monkeypatch):
    panel, _ = make_panel(qtbot)
    panel.resize(900, 500)
    assert save_screenshot(panel, tmp_path / 'a.png').stat().st_size > 1000
    monkeypatch.delenv('DEFT_SCREENSHOTS', raising=False)
    assert shoot(panel, 'x') is None
    monkeypatch.setenv('DEFT_SCREENSHOTS', str(tmp_path))
    assert shoot(panel, 'x') == tmp_path / 'panel_x.png' and (tmp_path / 'panel_x.png').exists()


def test_plugin_xml_names_the_plugin_class_and_package_xml_exports_it():
    library = ET.parse(PACKAGE / 'plugin.xml').getroot()
    cls = library.find('class')
    assert cls.get('base_class_type') == 'rqt_gui_py::Plugin'
    module, name = cls.get('type').rsplit('.', 1)
    source = (PACKAGE / (module.replace('.', '/') + '.py')).read_text()
    assert f'class {name}(Plugin):' in source
    export = ET.parse(PACKAGE / 'package.xml').getroot().find('export/rqt_gui')
    assert export.get('plugin') == '${prefix}/plugin.xml'
    assert "'plugin.xml'" in (PACKAGE / 'setup.py').read_text()


def test_deft_panel_help_needs_no_display(capsys):
    import pytest

    from deft_rqt.main import main
    with pytest.raises(SystemExit) as exit_:
        main(['--help'])
    assert exit_.value.code == 0 and '--namespace' in capsys.readouterr().out


def test_the_prior_view_is_shown_scaled_into_its_label(qtbot):
    import numpy as np

    from deft_common import image_codec
    panel, link = make_panel(qtbot)
    assert panel.view.pixmap() is None or panel.view.pixmap().isNull()
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (255, 0, 0)  # left half red, right half black
    link.prior_view.emit(image_codec.to_msg(rgb, 'rgb8'))
    pixmap = panel.view.pixmap()
    assert pixmap is not None and not pixmap.isNull()
    assert abs(pixmap.width() / pixmap.height() - 64 / 48) < 0.05  # the aspect kept
    image = pixmap.toImage()
    left, right = image.pixelColor(2, image.height() // 2), \
        image.pixelColor(image.width() - 3, image.height() // 2)
    assert (left.red(), left.green()) == (255, 0) and right.red() == 0
    assert '64 x 48' in panel.view.toolTip()

