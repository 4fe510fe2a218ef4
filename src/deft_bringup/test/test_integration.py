"""
The whole graph as separate processes over DDS.

Episodes end to end, the operator flow, cancellation, bad goals, failures that must not hang.
Tests run in file order on one graph; the last one kills a node.
"""

import math
import subprocess
import sys
import threading
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from deft_bringup.testing import wait_until
from deft_common import image_codec
from deft_common.runs import RunSettings, RunStore
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.msg import EpisodeRecord
from deft_interfaces.srv import PredictGrasp, ResetSim, Segment, SubmitReward

pytestmark = pytest.mark.integration
PHASES = ['perceive', 'predict', 'approach', 'grasp', 'post_grasp', 'reward', 'reset']


def goal(**kw):
    base = dict(task='pick up the cup', object_prompt='', mode='prior', reward_source='sim',
                seed=3)
    base.update(kw)
    return RunEpisode.Goal(**base)


def test_every_service_of_the_graph_answers(graph, episodes, probe):
    reset = probe.call(ResetSim, 'sim/reset', ResetSim.Request(seed=3, split='train'),
                       timeout=20, resend_after=2.0)
    assert reset.success and reset.seed == 3
    assert 0.35 < reset.object_pose.position.x < 0.65
    seg = probe.call(Segment, 'perception/segment', Segment.Request(prompt=''), timeout=15,
                     resend_after=3.0)
    assert seg.success, seg.error_msg
    assert seg.header.frame_id == 'camera_color_optical_frame'
    assert len(seg.points) % 3 == 0 and len(seg.points) > 30
    assert seg.crop.width == seg.crop.height == 224
    bad = probe.call(Segment, 'perception/segment', Segment.Request(prompt='', crop_size=5000),
                     timeout=15)
    assert not bad.success and bad.error_code == Segment.Response.BAD_PROMPT
    assert 'crop_size 5000' in bad.error_msg


def test_heuristic_baseline_prior_is_seeded_and_differs_from_the_affordance_prior(graph, probe):
    def predict(**kw):
        r = probe.call(PredictGrasp, 'affordance/predict',
                       PredictGrasp.Request(task='pick up the cup', **kw), timeout=20,
                       resend_after=5.0)
        assert r.success, r.error_msg
        return r.prior

    def quat(p):
        q = p.wrist_orientation
        return [q.x, q.y, q.z, q.w]

    model, a, b, c = predict(), predict(method='heuristic', seed=1), \
        predict(method='heuristic', seed=1), predict(method='heuristic', seed=2)
    assert model.source == 'fake' and a.source == 'heuristic'
    half = load_hand_config('').pose('half')
    assert list(a.hand_joint_positions) == pytest.approx(list(half))
    assert quat(a) == pytest.approx(quat(b)) and quat(a) != pytest.approx(quat(c))
    # bounding-box centre, below the top surface the geometric prior grasps
    assert a.contact_point.z < model.contact_point.z - 0.005
    bad = probe.call(PredictGrasp, 'affordance/predict',
                     PredictGrasp.Request(task='pick up the cup', method='magic'))
    assert not bad.success and bad.error_code == PredictGrasp.Response.BAD_REQUEST
    assert "'magic'" in bad.error_msg


def test_each_prior_is_drawn_on_the_camera_image(graph, probe):
    views, frames = [], []
    token = probe.subscribe(Image, 'affordance/prior_view', views.append)
    camera = probe.subscribe(Image, 'camera/color/image_raw', frames.append)
    try:
        # the view is drawn on the newest frame the affordance node holds: frames flow first
        wait_until(lambda: frames, 20, 'a frame on camera/color/image_raw')
        r = probe.call(PredictGrasp, 'affordance/predict',
                       PredictGrasp.Request(task='pick up the cup'), timeout=20,
                       resend_after=5.0)
        assert r.success, r.error_msg
        wait_until(lambda: views, 20, 'affordance/prior_view after the prediction')
    finally:
        probe.unsubscribe(token)
        probe.unsubscribe(camera)
    view = views[-1]
    assert view.encoding == 'rgb8' and (view.width, view.height) == (640, 480)
    rgb = image_codec.to_rgb(view)
    u, v = (int(round(x)) for x in r.prior.contact_pixels[:2])
    ring = rgb[max(0, v - 12):v + 13, max(0, u - 12):u + 13].reshape(-1, 3).astype(int)
    assert ((ring[:, 0] > 200) & (ring[:, 1] < 80) & (ring[:, 2] < 80)).any(), 'no contact ring'
    # the object tinted: the static scene's pixels changed where it lies (about 70 x 70 px)
    changed = np.abs(rgb.astype(int) - image_codec.to_rgb(frames[-1])).max(axis=2) > 20
    assert 1000 < changed.sum() < 0.2 * changed.size


def test_prior_episode_end_to_end(graph, episodes, probe):
    records = []
    sub = probe.subscribe(EpisodeRecord, 'episodes', records.append)
    try:
        outcome = episodes.run(goal(run_id='itest'), timeout=90)
        assert outcome.accepted
        r = outcome.result
        assert outcome.status == GoalStatus.STATUS_SUCCEEDED, r.message
        assert r.success and r.error_code == RunEpisode.Result.NONE
        assert outcome.phases == PHASES
        rec = r.record
        assert len(rec.xi) == len(rec.eps) == len(rec.parameter_names) == 23
        assert rec.parameter_names[:3] == ['contact_x', 'contact_y', 'contact_z']
        assert not any(rec.eps), 'prior mode must add no residual'
        assert rec.run_id == 'itest' and rec.reward_source == 'sim'
        # the geometric prior + depth segmentation find the box: the fake world is lifted
        assert r.reward == pytest.approx(1.0, abs=0.05), r.message
        wait_until(lambda: records, 5, 'the record on `episodes`')
        assert records[0].reward == r.reward and list(records[0].xi) == list(rec.xi)
    finally:
        probe.unsubscribe(sub)


def test_sampled_residual_is_seeded_and_recorded(graph, episodes):
    a = episodes.run(goal(mode='sample', seed=11), timeout=90)
    b = episodes.run(goal(mode='sample', seed=11), timeout=90)
    assert a.result.success and b.result.success, (a.result.message, b.result.message)
    assert any(a.result.record.eps)
    assert list(a.result.record.eps) == list(b.result.record.eps)


def test_operator_reward_flow(graph, episodes, probe):
    answers = []

    def operator(fb):
        if fb.phase == 'reward' and not answers:
            def submit():
                bad = probe.call(SubmitReward, 'submit_reward',
                                 SubmitReward.Request(run_id='op', episode=-1, reward=1.5))
                nan = probe.call(SubmitReward, 'submit_reward',
                                 SubmitReward.Request(run_id='op', episode=-1, reward=math.nan))
                wrong = probe.call(SubmitReward, 'submit_reward',
                                   SubmitReward.Request(run_id='other', episode=-1, reward=0.5))
                good = probe.call(SubmitReward, 'submit_reward',
                                  SubmitReward.Request(run_id='op', episode=-1, reward=0.7))
                answers.extend([bad, nan, wrong, good])
            answers.append('asked')
            threading.Thread(target=submit, daemon=True).start()

    outcome = episodes.run(goal(run_id='op', reward_source='operator'), timeout=90,
                           on_feedback=operator)
    assert outcome.result.success, outcome.result.message
    _, bad, nan, wrong, good = answers
    assert not bad.accepted and 'within [0, 1]' in bad.message
    assert not nan.accepted and 'within [0, 1], got nan' in nan.message
    assert not wrong.accepted and wrong.message.startswith("unknown run 'other'")
    assert "the episode waiting is -1 of run 'op'" in wrong.message
    assert good.accepted
    assert outcome.result.reward == pytest.approx(0.7)
    assert outcome.result.record.reward_source == 'operator'
    late = probe.call(SubmitReward, 'submit_reward', SubmitReward.Request(run_id='op', reward=1.0))
    assert not late.accepted and 'no episode is waiting' in late.message


def test_operator_terminal_scores_an_episode(graph, episodes, tmp_path):
    out_file = tmp_path / 'score.out'
    with open(out_file, 'w') as out:
        tool = subprocess.Popen([sys.executable, '-m', 'deft_cem.score_cli'],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    try:
        def answer(fb):
            if fb.phase == 'reward' and tool.stdin and not tool.stdin.closed:
                tool.stdin.write('great\n0.4\n')
                tool.stdin.flush()
                tool.stdin.close()

        outcome = episodes.run(goal(run_id='term', reward_source='operator'), timeout=90,
                               on_feedback=answer)
        assert outcome.result.success, outcome.result.message
        assert outcome.result.reward == pytest.approx(0.4)
        tool.wait(timeout=15)
        text = out_file.read_text()
        assert "one-off episode of run 'term' waits for a score" in text
        assert "'great' is not a score" in text and 'sent:' in text
    finally:
        if tool.poll() is None:
            tool.kill()


def test_cancel_during_approach_opens_the_hand(graph, episodes, probe):
    states = []
    sub = probe.subscribe(JointState, 'hand/joint_states', states.append)
    try:
        outcome = episodes.run(goal(), timeout=90, cancel_on_phase='approach')
        assert outcome.status == GoalStatus.STATUS_CANCELED, outcome.result.message
        assert outcome.result.error_code == RunEpisode.Result.CANCELED
        assert 'reward' not in outcome.phases
        states.clear()
        wait_until(lambda: states, 5, 'hand joint states')
        assert max(abs(p) for p in states[-1].position) < 0.1, 'hand not open after cancel'
    finally:
        probe.unsubscribe(sub)


@pytest.mark.parametrize('bad,why', [
    (dict(mode='dance'), "mode 'dance' is not one of"), (dict(task='  '), 'task is empty'),
    (dict(reward_source='vibes'), "reward_source 'vibes' is not one of"),
    (dict(mode='policy'), "no checkpoint 'policy_cvae.pt'"), (dict(run_id='a/b'), 'not valid')])
def test_malformed_goals_are_aborted_with_the_reason(graph, episodes, bad, why):
    """Users of rqt and `ros2 action send_goal` see why, in the result; nothing moves."""
    outcome = episodes.run(goal(**bad), timeout=10)
    assert outcome.accepted and outcome.status == GoalStatus.STATUS_ABORTED
    assert outcome.result.error_code == RunEpisode.Result.BAD_GOAL
    assert why in outcome.result.message and outcome.phases == []


def test_operator_scene_reset_waits_for_reset_done(graph, episodes, probe, tmp_path):
    """scene_reset operator: reset_request, deft_score's Enter -> reset_done; a timeout aborts."""
    node = next(n for n in graph.nodes if n.name == 'episode')
    node.overrides.update(scene_reset='operator', reset_timeout=3.0, run_root=str(tmp_path))
    graph.kill('episode')
    graph.restart('episode')
    wait_until(lambda: 'scene reset operator' in graph.tail('episode', 10**6).rsplit(
        '\n$ ', 1)[-1], 30, 'the restarted episode node')
    idle = probe.call(Trigger, 'reset_done', Trigger.Request(), timeout=20, resend_after=2.0)
    assert not idle.success and idle.message == 'no episode is waiting for a scene reset'
    out_file = tmp_path / 'score.out'
    with open(out_file, 'w') as out:  # Enter once the scene is back: then end of input
        tool = subprocess.Popen([sys.executable, '-m', 'deft_cem.score_cli'],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    details = []
    try:
        tool.stdin.write('\n')
        tool.stdin.close()
        outcome = episodes.run(goal(run_id='reset1'), timeout=60,
                               on_feedback=lambda fb: details.append(fb.detail))
        assert outcome.status == GoalStatus.STATUS_SUCCEEDED, outcome.result.message
        tool.wait(timeout=15)
        text = out_file.read_text()
        assert "one-off episode of run 'reset1' is done" in text
        assert "sent: scene reset after the one-off episode of run 'reset1'" in text
    finally:
        if tool.poll() is None:
            tool.kill()
    assert any(d.startswith('waiting for the operator to reset the scene: call reset_done (')
               for d in details)
    # nobody resets: RESET_FAILED after reset_timeout, and the episode itself stays recorded
    records = []
    sub = probe.subscribe(EpisodeRecord, 'episodes', records.append)
    try:
        t0 = time.monotonic()
        outcome = episodes.run(goal(run_id='reset2'), timeout=60)
        r = outcome.result
        assert outcome.status == GoalStatus.STATUS_ABORTED, r.message
        assert r.error_code == RunEpisode.Result.RESET_FAILED
        assert 'did not confirm the scene reset within 3 s' in r.message
        assert 'published on episodes' in r.message and r.record.run_id == 'reset2'
        assert time.monotonic() - t0 < 40
        wait_until(lambda: any(x.run_id == 'reset2' for x in records), 5, 'the record')
    finally:
        probe.unsubscribe(sub)
    # a run recorded with the embedding reward cannot resume on a node without it
    RunStore(tmp_path, 'emb').create(RunSettings(
        task='pick up the cup', object_prompt='', episodes=2, warmup_episodes=1, elites=1,
        initial_std=[0.1] * 23, reward_source='embedding', optimizer='cem', prior='affordance',
        seed=1, parameter_names=list(r.record.parameter_names)))
    tuned = episodes.fine_tune(FineTune.Goal(task='pick up the cup', run_id='emb', resume=True),
                               timeout=30)
    assert tuned.status == GoalStatus.STATUS_ABORTED and tuned.phases == []
    assert tuned.result.error_code == FineTune.Result.BAD_GOAL
    assert "run 'emb' uses reward_source 'embedding'" in tuned.result.message
    assert 'embedding_weights' in tuned.result.message
    assert episodes.run(goal(mode='dance'), timeout=10).result.error_code == \
        RunEpisode.Result.BAD_GOAL  # and the node is not left busy
    bad = episodes.fine_tune(FineTune.Goal(task=''), timeout=10)
    assert bad.status == GoalStatus.STATUS_ABORTED and 'task is empty' in bad.result.message


def test_perception_error_is_reported_not_hung(graph, episodes):
    t0 = time.monotonic()
    outcome = episodes.run(goal(object_prompt='point: 5000, 5'), timeout=60)
    assert outcome.status == GoalStatus.STATUS_ABORTED
    r = outcome.result
    assert r.error_code == RunEpisode.Result.PERCEPTION_FAILED
    assert 'perception' in r.message and math.isnan(r.reward)
    assert time.monotonic() - t0 < 30


def test_a_dead_node_gives_a_clear_error(graph, episodes):
    graph.kill('affordance')
    t0 = time.monotonic()
    outcome = episodes.run(goal(), timeout=60)
    r = outcome.result
    assert outcome.status == GoalStatus.STATUS_ABORTED
    # absent when the episode asks (its DDS lease ran out), or gone during the call: either way
    # a typed error naming the service, in seconds
    assert r.error_code in (RunEpisode.Result.SERVICE_UNAVAILABLE,
                            RunEpisode.Result.SERVER_GONE), r.message
    assert 'affordance/predict' in r.message
    assert time.monotonic() - t0 < 30
