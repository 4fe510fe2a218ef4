"""The emulated Protocol 2.0 chain, spoken to by the real dynamixel-sdk."""

import os
import random
import re
import signal
import subprocess
import sys
import termios
import time

import dynamixel_sdk as sdk
import pytest

from deft_hand_driver.dxl_protocol import crc16, packet, stuff, unstuff
from deft_hand_driver.emulated_bus import EmulatedBus, parse_ids

pytestmark = pytest.mark.timeout(30)
PH = sdk.PacketHandler(2.0)


@pytest.fixture
def bus():
    with EmulatedBus(ids=[1, 2, 3], seed=0) as chain:
        yield chain


@pytest.fixture
def port(bus):
    handler = sdk.PortHandler(bus.port)
    assert handler.setBaudRate(4000000)
    yield handler
    handler.closePort()


def test_crc_matches_the_sdk_and_the_e_manual_example():
    # e-manual, Protocol 2.0 ping of id 1: FF FF FD 00 01 03 00 01 19 4E
    assert packet(1, 0x01) == bytes.fromhex('ff ff fd 00 01 03 00 01 19 4e')
    rng = random.Random(1)
    for _ in range(20):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        assert crc16(data) == PH.updateCRC(0, list(data), len(data))


def test_byte_stuffing_round_trip_and_length():
    body = bytes([0x03, 0x14, 0x00, 0xFF, 0xFF, 0xFD, 0xFF])
    assert stuff(body) == bytes([0x03, 0x14, 0x00, 0xFF, 0xFF, 0xFD, 0xFD, 0xFF])
    assert unstuff(stuff(body)) == body
    raw = packet(1, 0x03, body[1:])
    assert int.from_bytes(raw[5:7], 'little') == len(raw) - 7 == 8 + 2
    # the SDK stuffs an instruction the same way
    tx = [0] * 7 + list(body) + [0, 0]
    tx[5], tx[6] = len(body) + 2, 0
    assert bytes(PH.addStuffing(tx)[7:-2]) == stuff(body)


def test_ping_answers_with_the_model_and_a_missing_id_times_out(bus, port):
    assert PH.ping(port, 2) == (1220, sdk.COMM_SUCCESS, 0)
    _, result, _ = PH.ping(port, 9)
    assert result == sdk.COMM_RX_TIMEOUT
    bus.set_missing(2)
    assert PH.ping(port, 2)[1] == sdk.COMM_RX_TIMEOUT
    bus.set_missing(2, False)
    assert PH.ping(port, 2)[1] == sdk.COMM_SUCCESS


def test_write_read_round_trip(bus, port):
    assert PH.write2ByteTxRx(port, 3, 84, 640) == (sdk.COMM_SUCCESS, 0)
    assert PH.read2ByteTxRx(port, 3, 84) == (640, sdk.COMM_SUCCESS, 0)
    assert bus.read_table(3, 84, 2) == 640
    assert bus.read_table(2, 84, 2) == 800  # the others are untouched


def test_values_containing_the_header_are_stuffed_both_ways(bus, port):
    # Homing Offset -131073 is FF FF FD FF on the wire: stuffed in the WRITE and in the status
    value = 0xFFFDFFFF
    assert PH.write4ByteTxRx(port, 1, 20, value) == (sdk.COMM_SUCCESS, 0)
    assert bus.read_table(1, 20, 4, signed=True) == -131073
    assert PH.read4ByteTxRx(port, 1, 20) == (value, sdk.COMM_SUCCESS, 0)


def test_a_corrupted_packet_gets_a_crc_error_status(port):
    raw = bytearray(packet(2, 0x02, bytes([132, 0, 4, 0])))
    raw[-1] ^= 0xFF
    port.clearPort()
    port.writePort(raw)
    port.setPacketTimeout(11)
    status, result = PH.rxPacket(port, False)
    assert result == sdk.COMM_SUCCESS and status[4] == 2 and status[8] == 3  # ERRNUM_CRC


def test_eeprom_is_locked_under_torque_and_goal_current_is_limited(bus, port):
    assert PH.write1ByteTxRx(port, 1, 11, 5) == (sdk.COMM_SUCCESS, 0)
    assert PH.write1ByteTxRx(port, 1, 64, 1) == (sdk.COMM_SUCCESS, 0)
    assert PH.write1ByteTxRx(port, 1, 11, 3) == (sdk.COMM_SUCCESS, 7)  # access error
    assert bus.read_table(1, 11, 1) == 5
    assert PH.write2ByteTxRx(port, 1, 102, 5000) == (sdk.COMM_SUCCESS, 6)  # above the limit
    assert bus.read_table(1, 102, 2) == 1750


def test_sync_write_moves_the_servos_and_sync_reads_agree(bus, port):
    writer = sdk.GroupSyncWrite(port, PH, 116, 4)
    reader = sdk.GroupSyncRead(port, PH, 126, 10)
    goals = {1: 1000, 2: 2048, 3: 3000}
    for sid, goal in goals.items():
        PH.write1ByteTxRx(port, sid, 64, 1)
        writer.addParam(sid, list(goal.to_bytes(4, 'little')))
        reader.addParam(sid)
    assert writer.txPacket() == sdk.COMM_SUCCESS
    PH.ping(port, 1)  # a sync write has no status: a round trip after it orders the check
    assert {sid: bus.read_table(sid, 116, 4) for sid in goals} == goals
    end = time.monotonic() + 5.0  # the servos settle in ~0.3 s (time constant 0.05 s)
    while time.monotonic() < end:
        assert reader.txRxPacket() == sdk.COMM_SUCCESS
        pos = {sid: reader.getData(sid, 132, 4) for sid in goals}
        if all(abs(pos[s] - goals[s]) <= 1 for s in goals):
            break
    assert all(abs(pos[s] - goals[s]) <= 1 for s in goals), pos
    assert reader.fastSyncRead() == sdk.COMM_SUCCESS
    assert {sid: reader.getData(sid, 132, 4) for sid in goals} == pos


def test_moving_servo_reports_velocity_and_a_clamped_current(bus, port):
    PH.write1ByteTxRx(port, 1, 11, 5)  # current-based position
    PH.write2ByteTxRx(port, 1, 102, 200)
    PH.write1ByteTxRx(port, 1, 64, 1)
    PH.write4ByteTxRx(port, 1, 116, 4000)
    for _ in range(50):
        current, _, _ = PH.read2ByteTxRx(port, 1, 126)
        velocity, _, _ = PH.read4ByteTxRx(port, 1, 128)
        if velocity:
            break
    assert velocity > 0 and current == 200  # saturated: far from the goal, at the limit


def test_a_fault_sets_the_alert_bit_and_the_hardware_error_status(bus, port):
    PH.write1ByteTxRx(port, 2, 64, 1)
    bus.set_fault(2, 'overload')
    value, result, error = PH.read1ByteTxRx(port, 2, 70)
    assert (value, result, error) == (0x20, sdk.COMM_SUCCESS, 0x80)
    assert bus.read_table(2, 64, 1) == 0  # the servo let go
    assert PH.write1ByteTxRx(port, 2, 64, 1) == (sdk.COMM_SUCCESS, 0x81)  # refused until reboot
    assert PH.reboot(port, 2) == (sdk.COMM_SUCCESS, 0x80)
    assert PH.read1ByteTxRx(port, 2, 70) == (0, sdk.COMM_SUCCESS, 0)


def test_dropped_status_packets_are_lost_once(bus, port):
    bus.drop_next(1)
    assert PH.ping(port, 1)[1] == sdk.COMM_RX_TIMEOUT
    assert PH.ping(port, 1)[1] == sdk.COMM_SUCCESS


def test_stop_makes_the_port_vanish_and_start_brings_the_link_back(tmp_path):
    link = str(tmp_path / 'ttyDXL')
    chain = EmulatedBus(ids=[4], link=link)
    chain.start()
    try:
        port = sdk.PortHandler(link)
        assert port.setBaudRate(1000000) and PH.ping(port, 4)[1] == sdk.COMM_SUCCESS
        chain.stop()
        assert not os.path.exists(link)
        with pytest.raises((OSError, termios.error)):
            PH.ping(port, 4)
        port.closePort()
        chain.start()
        port = sdk.PortHandler(link)
        assert port.setBaudRate(1000000) and PH.ping(port, 4)[1] == sdk.COMM_SUCCESS
        port.closePort()
    finally:
        chain.stop()


def test_parse_ids():
    assert parse_ids('1..4,9') == [1, 2, 3, 4, 9]
    for bad in ('', '3,3', '0..300'):
        with pytest.raises(ValueError, match='bad servo ids'):
            parse_ids(bad)


def test_cli_prints_a_port_the_sdk_can_use():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, '-m', 'deft_hand_driver.emulated_bus',
                             '--ids', '1..3'], stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        path = proc.stdout.readline().strip()
        port = sdk.PortHandler(path)
        assert port.setBaudRate(4000000)
        assert PH.ping(port, 3)[:2] == (1220, sdk.COMM_SUCCESS)
        port.closePort()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=5)
        proc.stdout.close()


def settle(port, sid, timeout=2.0):
    """Read position and velocity until the servo stands still; return (position, velocity)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        position, _, _ = PH.read4ByteTxRx(port, sid, 132)
        velocity, _, _ = PH.read4ByteTxRx(port, sid, 128)
        if velocity == 0 and position == last:
            break
        last = position
        time.sleep(0.01)
    return position, velocity


def test_an_obstacle_stops_the_servo_and_its_current_saturates(bus, port):
    PH.write1ByteTxRx(port, 1, 11, 5)  # current-based position
    PH.write2ByteTxRx(port, 1, 102, 300)
    PH.write1ByteTxRx(port, 1, 64, 1)
    bus.set_obstacle(1, 2300)  # the servo is at 2048: it cannot pass 2300 upwards
    PH.write4ByteTxRx(port, 1, 116, 2400)  # 100 ticks beyond: unblocked it would not saturate
    assert settle(port, 1) == (2300, 0)
    assert PH.read2ByteTxRx(port, 1, 126)[0] == 300
    PH.write4ByteTxRx(port, 1, 116, 2000)  # backing away is free
    assert settle(port, 1)[0] == 2000
    current = PH.read2ByteTxRx(port, 1, 126)[0]
    assert abs(current - 65536 if current >= 32768 else current) <= 2  # at rest, no load
    bus.set_obstacle(1, None)
    PH.write4ByteTxRx(port, 1, 116, 2400)
    assert settle(port, 1)[0] == 2400


def test_moving_a_horn_by_hand_drops_the_torque(bus, port):
    PH.write1ByteTxRx(port, 3, 64, 1)
    bus.set_position(3, 1500)
    assert bus.read_table(3, 64, 1) == 0
    assert PH.read4ByteTxRx(port, 3, 132)[0] == 1500


def test_cli_options_reach_the_bus_and_sigterm_removes_the_link(tmp_path):
    link = tmp_path / 'ttyHAND'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, '-m', 'deft_hand_driver.emulated_bus',
                             '--ids', '1', '--latency', '0.01', '--drop', '0',
                             '--time-constant', '0.5', '--link', str(link)],
                            stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == str(link)
        assert os.path.islink(link)
        port = sdk.PortHandler(str(link))
        assert port.setBaudRate(4000000)
        PH.write1ByteTxRx(port, 1, 64, 1)
        PH.write4ByteTxRx(port, 1, 116, 3048)  # 1000 ticks: a slow servo needs time
        t0 = time.monotonic()
        position, result, _ = PH.read4ByteTxRx(port, 1, 132)
        assert result == sdk.COMM_SUCCESS
        assert time.monotonic() - t0 >= 0.01  # the latency
        assert 2048 < position < 2800  # tau 0.5 s: far from the goal after ~0.1 s
        port.closePort()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        proc.stdout.close()


@pytest.mark.parametrize('args, message', [
    (['--drop', '1.5'], '--drop must be a probability'),
    (['--latency', '-1'], '--latency must be >= 0'),
    (['--time-constant', '0'], '--time-constant must be > 0'),
    (['--ids', '1..3', '--missing', '7'], r'--missing names ids \[7\]'),
])
def test_cli_refuses_bad_options(args, message, capsys):
    from deft_hand_driver.emulated_bus import main
    with pytest.raises(SystemExit):
        main(args)
    assert re.search(message, capsys.readouterr().err)


def test_corrupt_next_garbles_the_crc_of_that_many_replies(bus, port):
    bus.corrupt_next(2)
    assert PH.ping(port, 1)[1] == sdk.COMM_RX_CORRUPT
    assert PH.read1ByteTxRx(port, 2, 64)[1] == sdk.COMM_RX_CORRUPT
    assert PH.ping(port, 3)[1] == sdk.COMM_SUCCESS
    assert bus.corrupted == 2
    bus.corrupt_next(1)  # a sync read's reply: every status packet in it garbled
    reader = sdk.GroupSyncRead(port, PH, 132, 4)
    for sid in (1, 2, 3):
        reader.addParam(sid)
    assert reader.txPacket() == sdk.COMM_SUCCESS
    assert [PH.readRx(port, sid, 4)[1] for sid in (1, 2, 3)] == [sdk.COMM_RX_CORRUPT] * 3
    assert PH.ping(port, 1)[1] == sdk.COMM_SUCCESS


def test_a_late_reply_comes_after_the_timeout_and_the_chain_reads_on_meanwhile(bus, port):
    bus.set_latency(0.06)  # past the SDK's ~35 ms timeout
    assert PH.ping(port, 1)[1] == sdk.COMM_RX_TIMEOUT
    PH.write1ByteTxOnly(port, 2, 64, 1)  # no status: applied at once, though a reply is due
    time.sleep(0.1)
    assert bus.read_table(2, 64, 1) == 1
    late = os.read(port.ser.fileno(), 4096)  # the ping's reply, after its timeout
    assert late[:5] == b'\xff\xff\xfd\x00\x01' and late[7] == 0x55
    bus.set_latency(0.0)
    assert PH.ping(port, 1)[1] == sdk.COMM_SUCCESS
