"""The Dynamixel backend through the real dynamixel-sdk against the emulated servo chain."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from deft_hand_driver.dynamixel_bus import Addr, DynamixelHand, decode_hardware_error
from deft_hand_driver.emulated_bus import EmulatedBusProcess
from deft_hand_driver.hand_config import HandConfig, load_hand_config

pytestmark = pytest.mark.timeout(30)
CONFIG_PATH = Path(__file__).resolve().parents[1] / 'config' / 'leap_16dof.yaml'
CONFIG = load_hand_config(str(CONFIG_PATH))
IDS = CONFIG.servo_ids


class Log:
    """Collects what the backend logs."""

    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(('warning', msg))

    def info(self, msg):
        self.lines.append(('info', msg))

    def error(self, msg):
        self.lines.append(('error', msg))


class Clock:
    """A clock the test advances by hand (the reconnect backoff runs on it)."""

    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def bus(tmp_path):
    chain = EmulatedBusProcess(ids=IDS, link=str(tmp_path / 'ttyDXL'), seed=0)
    chain.start()
    yield chain
    chain.close()


def make_hand(bus, **kw):
    return DynamixelHand(CONFIG, port=bus.port, log=Log(), clock=Clock(), **kw)


@pytest.fixture(params=[False, True], ids=['sync_read', 'fast_sync_read'])
def hand(bus, request):
    backend = make_hand(bus, fast_sync_read=request.param)
    backend.connect()
    backend.set_torque(True)
    yield backend
    backend.close()


def table(bus, addr, size, signed=False):
    return [bus.read_table(sid, addr, size, signed) for sid in IDS]


def move(hand, targets, tol=0.01, loops=3000):
    for _ in range(loops):
        hand.write(targets)
        pos, vel, eff = hand.read()
        if np.max(np.abs(pos - targets)) < tol:
            break
    return pos, vel, eff


def test_connect_configures_every_servo(bus, hand):
    assert table(bus, Addr.OPERATING_MODE, 1) == [5] * 16  # current-based position
    assert table(bus, Addr.CURRENT_LIMIT, 2) == [350] * 16
    assert table(bus, Addr.GOAL_CURRENT, 2) == [350] * 16
    assert table(bus, Addr.POSITION_P, 2) == [600] * 16
    assert table(bus, Addr.POSITION_I, 2) == [0] * 16
    assert table(bus, Addr.POSITION_D, 2) == [200] * 16
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [1] * 16
    assert hand.hardware_errors() == []


def test_sixteen_joints_converge_to_their_targets(bus, hand):
    targets = CONFIG.pose('closed')
    targets[CONFIG.index('index_abd')] = -0.5
    start = hand.read()[0]
    np.testing.assert_allclose(start, 0.0, atol=1e-9)  # tick 2048 is 0 rad
    hand.write(targets)
    moving = hand.read()
    assert np.all(np.sign(moving[1][targets != 0]) == np.sign(targets[targets != 0]))
    assert np.all(np.abs(moving[2]) <= 1.0 + 1e-9) and np.any(moving[2] != 0)
    pos, vel, eff = move(hand, targets)
    np.testing.assert_allclose(pos, targets, atol=0.01)
    goal = table(bus, Addr.GOAL_POSITION, 4, signed=True)
    assert goal == list(2048 + np.rint(targets / (2 * np.pi / 4096)).astype(int))


def test_targets_outside_the_limits_are_clamped_with_one_warning(bus, hand):
    targets = CONFIG.pose('open')
    i = CONFIG.index('thumb_ip')
    targets[i] = CONFIG.upper[i] + 1.0
    assert hand.write(targets) == ['thumb_ip']
    assert hand.write(targets) == ['thumb_ip']
    warnings = [m for kind, m in hand.log.lines if kind == 'warning']
    assert warnings == ['targets clamped to the joint limits for thumb_ip']
    hand.read()  # the sync write has no status; a round trip orders the table check after it
    assert bus.read_table(IDS[i], Addr.GOAL_POSITION, 4) == hand.to_ticks(CONFIG.upper)[i]
    assert hand.write(CONFIG.pose('open')) == []
    with pytest.raises(ValueError, match='finite'):
        hand.write(np.full(16, np.nan))


def test_a_missing_servo_is_named_at_connect(tmp_path):
    chain = EmulatedBusProcess(ids=IDS, missing=[7])
    try:
        chain.start()
        backend = make_hand(chain)
        with pytest.raises(RuntimeError, match=r'no answer from servo id 7 \(middle_dip\)'):
            backend.connect()
    finally:
        chain.close()


def test_a_servo_going_silent_is_named_the_rest_let_go_and_it_recovers(bus, hand):
    bus.set_missing(5)
    with pytest.raises(RuntimeError, match=r'no answer from servo id 5 \(middle_mcp\)'):
        hand.read()
    others = [sid for sid in IDS if sid != 5]
    assert [bus.read_table(sid, Addr.TORQUE_ENABLE, 1) for sid in others] == [0] * 15
    with pytest.raises(RuntimeError, match='reconnect failed: no answer from servo id 5'):
        hand.read()
    with pytest.raises(RuntimeError, match='reconnecting in 0.1 s'):
        hand.read()
    bus.set_missing(5, False)
    hand.clock.now += 0.1
    hand.read()
    assert hand.reconnects == 1
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [1] * 16


def test_an_overload_is_reported_by_name_and_the_hand_lets_go(bus, hand):
    bus.set_fault(IDS[3], 'overload')
    hand.read()
    assert hand.hardware_errors() == ['servo id 3 (index_dip): overload']
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [0] * 16
    with pytest.raises(RuntimeError, match=r'servo id 3 \(index_dip\).*refused'):
        hand.set_torque(True)


def test_hardware_error_bits_by_name():
    assert decode_hardware_error(0) == []
    assert decode_hardware_error(0x01 | 0x04 | 0x08 | 0x10 | 0x20) == [
        'input voltage', 'overheating', 'motor encoder', 'electrical shock', 'overload']
    assert decode_hardware_error(0x42) == ['unknown bits 0x42']


def test_a_dropped_status_packet_costs_one_retry(bus, hand):
    bus.drop_next(1)
    hand.read()
    assert hand.retries_used >= 1  # one for the loss (a loaded machine may add a timeout)
    bus.drop_next(3)  # more than the two retries
    expected = 'no answer to 3 fast sync reads though every servo answers a ping' if hand.fast \
        else r'no answer from servo id 1 \(index_mcp\) after 3 sync reads'
    with pytest.raises(RuntimeError, match=expected):
        hand.read()
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [0] * 16


def test_random_packet_loss_is_absorbed_by_the_retries(tmp_path):
    chain = EmulatedBusProcess(ids=IDS, drop_probability=0.005, seed=3)
    try:
        chain.start()
        backend = make_hand(chain)
        backend.connect()
        for _ in range(100):
            backend.write(CONFIG.pose('half'))
            backend.read()
        assert backend.retries_used >= 1
        backend.close()
    finally:
        chain.close()


def test_the_port_vanishing_and_coming_back_reconnects(bus, hand):
    target = CONFIG.pose('half')
    move(hand, target)
    bus.stop()
    with pytest.raises(RuntimeError, match='port error'):
        hand.read()
    with pytest.raises(RuntimeError, match='reconnect failed: cannot open the hand bus'):
        hand.write(target)
    bus.start()
    with pytest.raises(RuntimeError, match='reconnecting in'):
        hand.read()
    hand.clock.now += 1.0
    pos = hand.read()[0]
    assert hand.reconnects == 1
    np.testing.assert_allclose(pos, target, atol=0.01)  # servo state survived the unplug
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [1] * 16  # re-initialised, torque restored
    assert table(bus, Addr.OPERATING_MODE, 1) == [5] * 16


def test_close_switches_the_torque_off(bus):
    backend = make_hand(bus)
    backend.connect()
    backend.set_torque(True)
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [1] * 16
    backend.close()
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [0] * 16
    with pytest.raises(RuntimeError, match='not connected'):
        backend.read()


def test_unsupported_model_and_bad_parameters(tmp_path):
    chain = EmulatedBusProcess(ids=IDS, model=1060)  # XL430: another control table
    try:
        chain.start()
        with pytest.raises(RuntimeError, match=r'servo id 1 \(index_mcp\): model number 1060'):
            make_hand(chain).connect()
    finally:
        chain.close()
    for bad in (dict(baud=12345), dict(operating_mode=1), dict(current_limit=0.0),
                dict(position_p=20000), dict(retries=-1)):
        with pytest.raises(ValueError):
            DynamixelHand(CONFIG, **bad)
    with pytest.raises(RuntimeError, match='cannot open the hand bus /nonexistent/tty'):
        DynamixelHand(CONFIG, port='/nonexistent/tty').connect()


def calibrated(zero=None, direction=None):
    data = yaml.safe_load(CONFIG_PATH.read_text())
    for joint, value in (zero or {}).items():
        next(j for j in data['joints'] if j['name'] == joint)['zero_ticks'] = value
    for joint, value in (direction or {}).items():
        next(j for j in data['joints'] if j['name'] == joint)['direction'] = value
    return HandConfig.from_dict(data)


def test_zero_offsets_and_directions_of_the_config_move_the_commanded_ticks(bus):
    config = calibrated(zero={'index_mcp': 1500}, direction={'thumb_ip': -1})
    hand = DynamixelHand(config, port=bus.port, log=Log(), clock=Clock())
    hand.connect()
    hand.set_torque(True)
    try:
        mcp, ip = config.index('index_mcp'), config.index('thumb_ip')
        pos = hand.read()[0]
        # every horn starts centred (2048): index_mcp reads (2048 - 1500) ticks above its zero
        assert pos[mcp] == pytest.approx((2048 - 1500) * 2 * np.pi / 4096)
        assert pos[ip] == 0.0
        targets = pos.copy()
        targets[mcp], targets[ip] = 1.0, 0.5
        hand.write(targets)
        moving = hand.read()[1]
        assert moving[ip] > 0  # the angle grows while the ticks fall
        assert bus.read_table(1, Addr.GOAL_POSITION, 4, True) == 1500 + 652  # 1.0 rad
        assert bus.read_table(15, Addr.GOAL_POSITION, 4, True) == 2048 - 326  # -0.5 rad
        pos = move(hand, targets)[0]
        np.testing.assert_allclose(pos[[mcp, ip]], [1.0, 0.5], atol=0.01)
        assert bus.read_table(15, Addr.PRESENT_POSITION, 4, True) < 2048
    finally:
        hand.close()


def test_reboot_clears_the_fault_and_puts_the_torque_back_on(bus, hand):
    assert hand.reboot_faulted() == []  # nothing to do
    bus.set_fault(3, 'overheating')
    hand.read()
    assert hand.hardware_errors() == ['servo id 3 (index_dip): overheating']
    assert hand.reboot_faulted() == [3]
    assert hand.hardware_errors() == []
    assert bus.read_table(3, Addr.HARDWARE_ERROR, 1) == 0
    assert table(bus, Addr.TORQUE_ENABLE, 1) == [1] * 16
    assert table(bus, Addr.GOAL_CURRENT, 2) == [350] * 16  # configured again after the reboot
    hand.read()
    assert hand.hardware_errors() == []
