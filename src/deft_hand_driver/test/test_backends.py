import math
from pathlib import Path

import numpy as np
import pytest

from deft_hand_driver.backends import BACKENDS, FakeHand, HandBackend, make_backend
from deft_hand_driver.hand_config import load_hand_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / 'config').glob('*.yaml'))
TAU = 0.08


class Clock:
    """A clock the test advances by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance(self, dt):
        self.now += dt


@pytest.fixture(params=CONFIGS, ids=lambda p: p.name)
def hand(request):
    return load_hand_config(str(request.param))


def powered(config, **kw):
    clock = Clock()
    fake = FakeHand(config, time_constant=TAU, clock=clock, **kw)
    fake.connect()
    fake.set_torque(True)
    return fake, clock


def test_starts_open_still_and_healthy(hand):
    fake, clock = powered(hand)
    clock.advance(1.0)
    pos, vel, eff = fake.read()
    np.testing.assert_array_equal(pos, hand.pose('open'))
    np.testing.assert_array_equal(vel, np.zeros(hand.size))
    np.testing.assert_array_equal(eff, np.zeros(hand.size))
    assert fake.hardware_errors() == []


def test_first_order_lag_reaches_63_percent_after_one_time_constant(hand):
    fake, clock = powered(hand)
    open_, closed = hand.pose('open'), hand.pose('closed')
    fake.write(closed)
    clock.advance(TAU)
    pos, _, _ = fake.read()
    np.testing.assert_allclose(pos, open_ + (1 - math.exp(-1)) * (closed - open_))
    assert hand.closure(pos) == pytest.approx(0.632, abs=1e-3)
    clock.advance(4 * TAU)
    assert hand.closure(fake.read()[0]) == pytest.approx(1 - math.exp(-5))


def test_velocity_is_the_displacement_over_the_step(hand):
    fake, clock = powered(hand)
    open_, closed = hand.pose('open'), hand.pose('closed')
    fake.write(closed)
    clock.advance(0.01)
    pos, vel, _ = fake.read()
    np.testing.assert_allclose(vel, (pos - open_) / 0.01)
    np.testing.assert_allclose(vel, (closed - open_) * (1 - math.exp(-0.01 / TAU)) / 0.01)


def test_many_small_reads_integrate_like_one_large_step(hand):
    coarse, coarse_clock = powered(hand)
    fine, fine_clock = powered(hand)
    for fake in (coarse, fine):
        fake.write(hand.pose('closed'))
    coarse_clock.advance(0.2)
    for _ in range(20):
        fine_clock.advance(0.01)
        fine.read()
    np.testing.assert_allclose(fine.read()[0], coarse.read()[0])


def test_torque_off_leaves_the_joints_where_they_are(hand):
    fake, clock = powered(hand)
    fake.write(hand.pose('closed'))
    clock.advance(TAU)
    held = fake.read()[0]
    fake.set_torque(False)
    clock.advance(1.0)
    pos, vel, _ = fake.read()
    np.testing.assert_array_equal(pos, held)
    np.testing.assert_array_equal(vel, 0.0)
    # and time spent unpowered is not integrated when the torque comes back
    fake.set_torque(True)
    clock.advance(TAU)
    expected = hand.pose('closed') + (held - hand.pose('closed')) * math.exp(-1)
    np.testing.assert_allclose(fake.read()[0], expected)


def test_unpowered_hand_ignores_targets(hand):
    clock = Clock()
    fake = FakeHand(hand, time_constant=TAU, clock=clock)
    fake.write(hand.pose('closed'))
    clock.advance(1.0)
    np.testing.assert_array_equal(fake.read()[0], hand.pose('open'))


def test_stall_closure_stops_the_fingers_on_the_imaginary_object(hand):
    fake, clock = powered(hand, stall_closure=0.4)
    open_, closed = hand.pose('open'), hand.pose('closed')
    fake.write(closed)
    for _ in range(50):
        clock.advance(0.02)
        pos, vel, _ = fake.read()
    np.testing.assert_allclose(pos, open_ + 0.4 * (closed - open_))
    assert hand.closure(pos) == pytest.approx(0.4)
    np.testing.assert_array_equal(vel, 0.0)
    # the joints the object holds push at full effort, towards closing; the others rest
    _, _, eff = fake.read()
    np.testing.assert_array_equal(eff, np.sign(closed - open_))
    # opening again is not blocked
    fake.write(open_)
    clock.advance(10 * TAU)
    pos, _, eff = fake.read()
    assert hand.closure(pos) < 0.01
    np.testing.assert_array_equal(eff, 0.0)


def test_stall_leaves_joints_that_do_not_close_alone():
    hand = load_hand_config(str(CONFIGS[0]))
    still = np.flatnonzero(hand.pose('closed') == hand.pose('open'))
    assert still.size  # the abduction joints of the shipped hand
    fake, clock = powered(hand, stall_closure=0.5)
    target = hand.pose('closed')
    mid = (hand.lower + hand.upper) / 2
    target[still] = mid[still]
    fake.write(target)
    clock.advance(20 * TAU)
    np.testing.assert_allclose(fake.read()[0][still], mid[still])


def test_clock_going_backwards_does_not_move_the_joints(hand):
    fake, clock = powered(hand)
    fake.write(hand.pose('closed'))
    clock.advance(-1.0)
    pos, vel, _ = fake.read()
    np.testing.assert_array_equal(pos, hand.pose('open'))
    np.testing.assert_array_equal(vel, 0.0)


def test_bad_time_constant_and_unknown_backend(hand):
    with pytest.raises(ValueError, match='time_constant must be > 0'):
        FakeHand(hand, time_constant=0.0)
    with pytest.raises(ValueError, match="unknown hand backend 'serial'; available: fake, "
                       'dynamixel'):
        make_backend('serial', hand)
    assert BACKENDS == ('fake', 'dynamixel')


def test_make_backend_passes_the_options_on(hand):
    clock = Clock()
    fake = make_backend('fake', hand, time_constant=0.5, stall_closure=0.3, clock=clock)
    assert isinstance(fake, FakeHand) and isinstance(fake, HandBackend)
    assert (fake.tau, fake.stall_closure, fake.clock) == (0.5, 0.3, clock)
    assert fake.config is hand


def test_write_keeps_its_own_copy_of_the_targets(hand):
    fake, clock = powered(hand)
    targets = hand.pose('closed')
    fake.write(targets)
    targets[:] = 99.0  # the caller reuses its buffer
    clock.advance(20 * TAU)
    np.testing.assert_allclose(fake.read()[0], hand.pose('closed'), atol=1e-6)
