"""The sim clock: lockstep with the robot's states, fast only while it acts, rest frames."""

import pytest

from deft_sim.sim_clock import Activity, ClockSettings, Pace, Peers

S = ClockSettings(step=0.02, max_peer_lag=0.1, peer_timeout=0.5, idle_after=1.0,
                  rest_frame_after=0.1)


def test_settings_are_checked():
    with pytest.raises(ValueError, match='max_peer_lag'):
        ClockSettings(step=0.02, max_peer_lag=0.01)
    with pytest.raises(ValueError, match='step'):
        ClockSettings(step=0.0)
    with pytest.raises(ValueError):
        ClockSettings(peer_timeout=0.0)


def test_no_peer_no_wait():
    assert Peers().wait(10.0, 0.0, S) == (0.0, None)


def test_a_peer_within_the_lag_lets_the_clock_step():
    peers = Peers()
    peers.heard('arm', 9.92, wall=100.0)
    assert peers.wait(10.02, 100.1, S) == (0.0, None)  # 10.02 - 0.1 <= 9.92


def test_a_lagging_peer_holds_the_clock_until_it_reports_or_goes_silent():
    peers = Peers()
    peers.heard('arm', 10.0, wall=100.0)
    peers.heard('hand', 9.8, wall=100.0)
    wait, peer = peers.wait(10.02, 100.1, S)
    assert peer == 'hand' and wait == pytest.approx(0.4)  # silent at 100.5
    peers.heard('hand', 9.95, wall=100.2)  # its next state: the clock may step
    assert peers.wait(10.02, 100.2, S) == (0.0, None)
    # silent for peer_timeout: not waited for any more (not started, or dead)
    assert peers.wait(20.0, 100.8, S) == (0.0, None)


def test_the_clock_never_runs_more_than_the_lag_ahead_of_a_live_peer():
    peers, t = Peers(), 10.0
    peers.heard('arm', t, wall=0.0)
    steps = 0
    while peers.wait(t + S.step, 0.1, S)[1] is None:
        t += S.step
        steps += 1
    assert t - 10.0 <= S.max_peer_lag + 1e-9 and steps == 5


def test_activity_is_fast_while_inputs_change_and_idle_after():
    a = Activity(S, now=0.0)
    a.update(None, 0.0)
    a.update([0.2, 0.0, 0.45, 1.0], 0.0)  # the first inputs are no change
    assert a.idle(1.0) and not a.rest_frame_due(1.0)
    a.update([0.2, 0.0, 0.44, 1.0], 2.0)  # 1 cm: a motion
    assert not a.idle(2.5) and a.idle(3.0)
    a.update([0.2, 0.0, 0.4405, 1.0], 2.2)  # below `change`: no motion
    assert a.changed == 2.0


def test_one_rest_frame_after_each_motion():
    a = Activity(S, now=0.0)
    a.update([0.0, 0.0], 0.0)
    a.update([0.1, 0.0], 1.0)
    assert not a.rest_frame_due(1.05)
    assert a.rest_frame_due(1.1)
    assert not a.rest_frame_due(1.5)  # once
    a.update([0.2, 0.0], 2.0)
    a.reset()  # a reset draws the scene itself: no rest frame owed
    assert not a.rest_frame_due(3.0)


def test_pace_is_real_time_when_idle_and_free_when_fast():
    pace = Pace()
    assert pace.wall_due(5.0, 100.0, 0.0) == 100.0
    assert pace.wall_due(5.0, 100.0, 1.0) == 100.0
    assert pace.wall_due(5.5, 100.1, 1.0) == pytest.approx(100.5)
    assert pace.wall_due(6.0, 100.2, 10.0) == 100.2  # a new factor: a new schedule
    assert pace.wall_due(6.5, 100.2, 10.0) == pytest.approx(100.25)
    assert pace.wall_due(7.0, 200.0, 10.0) == 200.0  # far behind: no burst to catch up
    a = Activity(S, now=0.0)
    a.update([0.0], 0.0)
    a.update([1.0], 0.5)
    assert pace.factor(a, 1.0, S) == 0.0 and pace.factor(a, 2.0, S) == 1.0
