"""
The panel against the real graph: goals sent from the forms, the slider's score, a cancel.

Headless (QT_QPA_PLATFORM=offscreen) with pytest-qt; the graph is the kinematic sim of
deft_bringup.testing.FAST_SIM.
"""

import math

import pytest
from qtpy.QtCore import Qt

from deft_bringup.testing import wait_until
from deft_rqt.forms import set_value
from deft_rqt.screenshots import shoot

pytestmark = pytest.mark.integration


def select_tab(panel, form):
    panel.tabs.setCurrentWidget(form)


def test_fine_tune_from_the_form_fills_the_curve(panel, qtbot):
    form = panel.tune_form
    select_tab(panel, form)
    form.task.setEditText('pick up the cup')
    form.episodes.setValue(3)
    form.warmup_episodes.setValue(2)
    form.elites.setValue(2)
    set_value(form.reward_source, 'sim')
    form.run_id.setText('panel3')
    seen = []
    panel.link.feedback.connect(lambda kind, fb: seen.append(fb.phase))
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    assert not panel.send_button.isEnabled() and panel.cancel_button.isEnabled()
    # a run that ends early (a failed episode) ends the wait with its message
    qtbot.waitUntil(lambda: len(panel.progress.rewards) >= 2 or panel.progress.status != '',
                    timeout=240_000)
    assert len(panel.progress.rewards) >= 2, (panel.progress.status, panel.progress.message)
    # the episode's prior drawn on the camera image (affordance/prior_view)
    qtbot.waitUntil(lambda: panel.view.pixmap() is not None and not panel.view.pixmap().isNull(),
                    timeout=30_000)
    shoot(panel, 'fine_tune')  # make screenshots: a run under way
    qtbot.waitUntil(lambda: panel.progress.status != '', timeout=240_000)
    progress = panel.progress
    assert progress.status == 'succeeded', progress.message
    assert len(progress.rewards) == 3 and all(0.0 <= r <= 1.0 for r in progress.rewards)
    assert panel.curve.rewards == progress.rewards and len(panel.curve.elites) == 2
    assert panel.curve.episodes == 3
    assert {'perceive', 'approach', 'reward', 'warmup', 'refit'} <= set(seen)
    assert 'episode 3 of 3' in panel.status.text()
    assert panel.std.text().startswith('std of D: ')
    assert panel.send_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_operator_scores_run_episode_with_the_slider(panel, qtbot):
    form = panel.run_form
    select_tab(panel, form)
    form.task.setEditText('pick up the cup')
    set_value(form.mode, 'prior')
    set_value(form.reward_source, 'operator')
    form.run_id.setText('slider')
    assert not panel.submit_button.isEnabled()
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    qtbot.waitUntil(panel.submit_button.isEnabled, timeout=120_000)
    assert "of run 'slider'" in panel.request.text()
    panel.slider.setValue(70)
    assert panel.score.text() == '0.70'
    shoot(panel, 'operator_score')  # make screenshots: an episode waiting for its score
    qtbot.mouseClick(panel.submit_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.progress.status != '', timeout=120_000)
    assert panel.progress.status == 'succeeded', panel.progress.message
    assert panel.progress.rewards == [pytest.approx(0.7)]
    assert 'submit_reward: accepted' in panel.log.toPlainText()
    qtbot.waitUntil(lambda: not panel.submit_button.isEnabled(), timeout=10_000)
    assert panel.request.text() == 'no episode waits for a score'


def test_cancel_stops_a_fine_tune(panel, qtbot):
    form = panel.tune_form
    select_tab(panel, form)
    form.task.setEditText('pick up the cup')
    form.episodes.setValue(3)
    form.elites.setValue(0)
    form.run_id.setText('cancelled')
    form.resume.setChecked(False)
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.progress.phase == 'approach', timeout=120_000)
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.progress.status != '', timeout=120_000)
    assert panel.progress.status == 'canceled', panel.progress.message
    assert all(math.isfinite(r) for r in panel.progress.rewards)
    assert panel.send_button.isEnabled()
    # the cancelled run can be resumed: the episode node lists it, the form picks it
    qtbot.waitUntil(lambda: any('cancelled' in form.runs.itemText(i)
                                for i in range(form.runs.count())), timeout=20_000)
    index = next(i for i in range(form.runs.count()) if 'cancelled' in form.runs.itemText(i))
    form.pick_run(index)
    goal = form.goal()
    assert goal.resume and goal.run_id == 'cancelled' and goal.episodes == 3


def test_the_scene_is_reset_button_confirms_reset_done(panel, graph, qtbot):
    """With scene_reset operator the episode waits for the button; runs after the others."""
    node = next(n for n in graph.nodes if n.name == 'episode')
    node.overrides.update(scene_reset='operator', reset_timeout=60.0)
    graph.kill('episode')
    graph.restart('episode')
    wait_until(lambda: 'scene reset operator' in graph.tail('episode', 10**6).rsplit(
        '\n$ ', 1)[-1], 60, 'the restarted episode node')
    form = panel.run_form
    select_tab(panel, form)
    set_value(form.reward_source, 'sim')
    form.run_id.setText('reset')
    qtbot.waitUntil(panel.link.server_ready, timeout=30_000)
    qtbot.mouseClick(panel.send_button, Qt.LeftButton)  # resent while discovery settles
    qtbot.waitUntil(panel.reset_button.isEnabled, timeout=120_000)
    assert "of run 'reset'" in panel.reset_label.text()
    assert panel.progress.phase == 'reset' and panel.progress.status == ''
    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.progress.status != '', timeout=60_000)
    assert panel.progress.status == 'succeeded', panel.progress.message
    assert 'reset_done: accepted' in panel.log.toPlainText()
    qtbot.waitUntil(lambda: not panel.reset_button.isEnabled(), timeout=10_000)
