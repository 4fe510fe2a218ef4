"""The Dynamixel backend through the real dynamixel-sdk against the emulated servo chain."""

from pathlib import Path
import time

import numpy as np
import pytest
import yaml

from deft_hand_driver.dxl_link import pick_kind, read_failure, status_ids
from deft_hand_driver.dynamixel_bus import Addr, DynamixelHand, decode_hardware_error
from deft_hand_driver.emulated_bus import EmulatedBusProcess
from deft_hand_driver.hand_backend import BusFault
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


def move(hand, targets, tol=0.01, seconds=10.0):
    end = time.monotonic() + seconds  # the emulated servos settle in well under 1 s
    while time.monotonic() < end:
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
    with pytest.raises(BusFault, match='reconnect failed: no answer from servo id 5') as failed:
        hand.read()
    with pytest.raises(BusFault) as waiting:  # within the backoff: the same words, no countdown
        hand.read()
    assert str(waiting.value) == str(failed.value) and waiting.value.key == failed.value.key
    assert failed.value.kind == BusFault.NO_ANSWER and failed.value.ids == (5,)
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
    with pytest.raises(BusFault, match='reconnect failed: cannot open the hand bus') as waiting:
        hand.read()  # within the backoff: the last failure again
    assert waiting.value.kind == BusFault.PORT_GONE
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


# --- bus faults told apart (issue #16) -------------------------------------------------------
def torque(bus):
    return table(bus, Addr.TORQUE_ENABLE, 1)


def let_go(bus, timeout=5.0):
    """Whether every servo's torque is off, within `timeout` (a broadcast write has no status)."""
    end = time.monotonic() + timeout
    while torque(bus) != [0] * 16 and time.monotonic() < end:
        time.sleep(0.01)
    return torque(bus) == [0] * 16


def reconnect(hand, attempts=20):
    """Read until the backend is back (the test clock jumps past each backoff); the faults met."""
    faults = []
    for _ in range(attempts):
        hand.clock.now += 10.0
        try:
            hand.read()
            return faults
        except BusFault as exc:
            faults.append(exc)
    raise AssertionError(f'no reconnect; last fault: {faults[-1]}')


def test_corrupted_replies_are_a_crc_fault_naming_the_servos_not_no_answer(bus, hand):
    bus.corrupt_next(20)  # 20 replies with a bad CRC: the sync reads, then the pings of reconnects
    with pytest.raises(BusFault, match=r'corrupted replies \(bad CRC or cut short\) from ') as got:
        hand.read()
    fault = got.value
    assert fault.kind == BusFault.CORRUPT and 'no answer' not in str(fault)
    assert fault.ids == tuple(IDS)  # every servo's status was garbled: all named
    assert 'all 16 servos (ids 1, 0, 2, 3' in str(fault) and 'in 3 of 3 ' in str(fault)
    assert 'termination' in str(fault) and '4000000 baud' in str(fault)  # what to check
    assert let_go(bus)  # a broadcast write: it needs no reply
    during = reconnect(hand)
    assert during and all(f.kind == BusFault.CORRUPT for f in during), [str(f) for f in during]
    assert all('reconnect failed: corrupted replies' in str(f) for f in during)
    assert hand.reconnects == 1 and torque(bus) == [1] * 16
    assert hand.bus_faults().get(BusFault.NO_ANSWER, 0) == 0
    # each of the 20 replies counted (a loaded machine may turn one into a timeout)
    assert 18 <= hand.bus_faults()[BusFault.CORRUPT] <= 20


def test_replies_50_ms_late_are_a_bus_fault_and_the_hand_lets_go(bus, hand):
    target = CONFIG.pose('half')
    move(hand, target)
    bus.set_latency(0.05)  # beyond the SDK's ~35 ms timeout
    with pytest.raises(BusFault, match=r'late replies \(after the \d+ ms timeout\) from ') as got:
        hand.read()
    fault = got.value
    assert fault.kind == BusFault.LATE and fault.ids == tuple(IDS)
    assert 'latency timer' in str(fault) and 'Return Delay Time' in str(fault)
    assert let_go(bus)  # nobody holds a grasp on data it cannot trust
    for _ in range(3):  # while late, reconnects fail as late too, and leave the torque off
        hand.clock.now += 10.0
        with pytest.raises(BusFault, match='reconnect failed: late replies') as again:
            hand.read()
        assert again.value.kind == BusFault.LATE
        assert torque(bus) == [0] * 16
    bus.set_latency(0.0)
    reconnect(hand)
    assert hand.reconnects == 1 and torque(bus) == [1] * 16  # back, holding where it is
    np.testing.assert_allclose(hand.read()[0], target, atol=0.01)
    assert hand.bus_faults()[BusFault.LATE] >= 3


def test_replies_later_than_the_wait_are_late_not_silent(bus, tmp_path):
    backend = make_hand(bus, late_window=0.05)
    backend.connect()
    try:
        bus.set_latency(0.3)  # past the 35 ms timeout and the 50 ms wait: found on the line later
        with pytest.raises(BusFault) as got:
            backend.read()
        assert got.value.kind == BusFault.LATE, str(got.value)
        assert backend.bus_faults()[BusFault.LATE] >= 1
    finally:
        bus.set_latency(0.0)
        backend.close()


def test_a_vanished_port_is_one_fault_repeated_word_for_word(bus, hand):
    bus.stop()
    with pytest.raises(BusFault, match=r'port error \(OSError') as first:
        hand.read()
    assert first.value.kind == BusFault.PORT_GONE and 'check the USB cable' in str(first.value)
    seen = set()
    for _ in range(30):  # reconnect attempts and the backoff between them
        hand.clock.now += 0.05
        with pytest.raises(BusFault) as got:
            hand.read()
        assert got.value.kind == BusFault.PORT_GONE
        seen.add((got.value.key, str(got.value)))
    assert {key for key, _ in seen} == {first.value.key}  # one fault: one log line
    assert len(seen) == 1, seen  # the same words each time: no countdown
    assert 'reconnect failed: cannot open the hand bus' in seen.pop()[1]


@pytest.mark.parametrize('data, ids', [
    (b'', []),
    (b'\xff\xff\xfd\x00\x05\x04\x00\x55\x00\x00\x00', [5]),
    (b'junk\xff\xff\xfd\x00\x01\x04\x00\x55\x00\x00\x00\xff\xff\xfd\x00\x02\x04\x00\x55', [1, 2]),
    (b'\xff\xff\xfd\x00\x07\x04\x00\x03\x00\x00\x00', []),  # an instruction, not a status
])
def test_status_ids_finds_the_senders_of_late_bytes(data, ids):
    assert status_ids(data) == ids


def test_a_failed_read_is_classified_by_what_came_back():
    ids = [1, 2, 3]
    late = b'\xff\xff\xfd\x00\x02\x04\x00\x55\x00\x00\x00'
    assert read_failure([2], [3], late, ids) == (BusFault.CORRUPT, [2])
    assert read_failure([], [1, 2, 3], late, ids) == (BusFault.LATE, [2])
    assert read_failure([], [1, 2, 3], late.replace(b'\x02', b'\xfe', 1), ids) == \
        (BusFault.LATE, [1, 2, 3])  # a fast sync read's reply
    assert read_failure([], [3], b'', ids) == (BusFault.NO_ANSWER, [3])
    assert pick_kind([BusFault.NO_ANSWER, BusFault.LATE, BusFault.CORRUPT], False) == \
        BusFault.CORRUPT
    assert pick_kind([BusFault.NO_ANSWER] * 3, True) == BusFault.LATE
    assert pick_kind([BusFault.NO_ANSWER] * 3, False) == BusFault.NO_ANSWER


def test_a_bus_fault_key_holds_no_counts():
    silent = BusFault('no answer from servo id 5 after 3 sync reads', BusFault.NO_ANSWER, [5])
    assert silent.key == 'no answer [5]'
    assert BusFault('corrupted replies from servo id 1 in 2 of 3 sync reads', BusFault.CORRUPT,
                    [1]).key == BusFault.CORRUPT  # which servos noise hits changes: not the key
