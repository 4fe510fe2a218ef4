"""
The real hand: Dynamixel X-series servos over dynamixel-sdk, Protocol 2.0.

Units (X-series e-manual):
- position: 4096 ticks per turn (0.088 deg/tick). A joint angle q (radians, as in the hand config)
  is tick `zero[i] + direction[i] * q / RAD_PER_TICK`, with the calibration of the hand config
  (per joint `zero_ticks`, default 2048, i.e. 0 rad = the horn centred = the flat hand of
  config/leap_16dof.yaml, the LEAP assembly; `direction` +1, positive angles = increasing ticks,
  or -1). The constructor's `zero_ticks` overrides the config's.
- velocity: 0.229 rpm/tick (signed 32 bit). current: `CURRENT_UNIT_MA` per tick by model
  (1 mA on XL330/XC330, 2.69 mA on XM430); efforts are reported as a fraction of `current_limit`.

One control loop = one `sync_write_goals` (Goal Position of every servo) and one
`sync_read_state` (Present Current, Velocity, Position: 10 bytes from address 126; with
`fast_sync_read` the servos answer in one packet, which firmware >= 46 supports). Every SDK
call is bounded by the SDK's packet timeout (about 35 ms), retried at most `retries` times.
Errors are RuntimeErrors naming the servo id and joint. A servo that stays silent, or a port
that fails, switches the torque off where it still can and puts the backend into reconnect:
each later read/write tries to reopen and re-initialise the bus, with a backoff doubling from
0.1 s to `max_backoff`; the re-initialised servos hold their present position (`reconnects`
counts the successes, so the caller can adopt that position as its setpoint).

A servo raising a hardware error (alert bit, then Hardware Error Status) is reported by
`hardware_errors()` and every servo lets go; `reboot_faulted()` reboots the faulted servos (the
REBOOT instruction clears the error), configures them again and puts the torque back on.
"""

import logging
import math
import termios
import time
from typing import Callable, List, Optional, Sequence, Tuple

import dynamixel_sdk as sdk
import numpy as np

from deft_hand_driver.hand_backend import HandBackend
from deft_hand_driver.hand_config import HandConfig


class Addr:
    """X-series (XC330, XL330, XM430) control-table addresses used here."""

    MODEL_NUMBER = 0
    OPERATING_MODE = 11
    CURRENT_LIMIT = 38
    TORQUE_ENABLE = 64
    HARDWARE_ERROR = 70
    POSITION_D = 80
    POSITION_I = 82
    POSITION_P = 84
    GOAL_CURRENT = 102
    GOAL_POSITION = 116
    PRESENT_CURRENT = 126
    PRESENT_VELOCITY = 128
    PRESENT_POSITION = 132


STATE_START, STATE_SIZE = Addr.PRESENT_CURRENT, 10
STATE = np.dtype([('current', '<i2'), ('velocity', '<i4'), ('position', '<i4')])
RAD_PER_TICK = 2.0 * math.pi / 4096.0
RAD_S_PER_TICK = 0.229 * 2.0 * math.pi / 60.0
CENTRE = 2048
# model number -> mA per current tick
CURRENT_UNIT_MA = {1190: 1.0, 1200: 1.0,                            # XL330-M077, -M288
                   1210: 1.0, 1220: 1.0, 1230: 1.0, 1240: 1.0,      # XC330-T181/T288/M181/M288
                   1020: 2.69, 1030: 2.69}                          # XM430-W350, -W210
POSITION_MODES = {3: 'position', 4: 'extended position', 5: 'current-based position'}
HARDWARE_ERROR_BITS = {0: 'input voltage', 2: 'overheating', 3: 'motor encoder',
                       4: 'electrical shock', 5: 'overload'}
ALERT = 0x80
BAUD_RATES = (9600, 57600, 115200, 1000000, 2000000, 3000000, 4000000)
PORT_ERRORS = (OSError, termios.error)


def decode_hardware_error(status: int) -> List[str]:
    """Name the bits of a Hardware Error Status byte (address 70)."""
    names = [name for bit, name in HARDWARE_ERROR_BITS.items() if status & (1 << bit)]
    unknown = status & ~sum(1 << b for b in HARDWARE_ERROR_BITS)
    return names + ([f'unknown bits 0x{unknown:02x}'] if unknown else [])


class DynamixelHand(HandBackend):
    """A hand of Dynamixel X-series servos on one bus (a U2D2 or similar)."""

    def __init__(self, config: HandConfig, port: str = '/dev/ttyUSB0', baud: int = 4000000,
                 operating_mode: int = 5, current_limit: float = 350.0, position_p: int = 600,
                 position_i: int = 0, position_d: int = 200, retries: int = 2,
                 max_backoff: float = 2.0, zero_ticks: Optional[Sequence[int]] = None,
                 fast_sync_read: bool = False, log=None, reboot_wait: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(config)
        if baud not in BAUD_RATES:
            raise ValueError(f'baud {baud} not supported; use one of {BAUD_RATES}')
        if operating_mode not in POSITION_MODES:
            raise ValueError(f'operating_mode {operating_mode} is not a position mode; '
                             f'use one of {sorted(POSITION_MODES)} (5 = current-based position)')
        if not current_limit > 0:
            raise ValueError('current_limit must be > 0 mA')
        if not all(0 <= g <= 16383 for g in (position_p, position_i, position_d)):
            raise ValueError('position gains must be in 0..16383')
        if retries < 0:
            raise ValueError('retries must be >= 0')
        self.port, self.baud, self.mode = port, baud, operating_mode
        self.current_limit = float(current_limit)
        self.gains = {Addr.POSITION_P: position_p, Addr.POSITION_I: position_i,
                      Addr.POSITION_D: position_d}
        self.retries, self.max_backoff, self.clock = retries, max_backoff, clock
        self.fast = fast_sync_read
        self.log = log or logging.getLogger(__name__)
        self.ids = list(config.servo_ids)
        zero = config.zero_ticks if zero_ticks is None else zero_ticks
        self.zero = np.broadcast_to(np.asarray(zero, dtype=np.int64), (config.size,)).copy()
        self.sign = np.asarray(config.direction, dtype=np.int64)
        self.reboot_wait = reboot_wait
        self._faulted: List[int] = []
        self.unit_ma = np.ones(config.size)
        self.ph = sdk.PacketHandler(2.0)
        self._port = None
        self._reader = self._writer = None
        self._torque = False
        self._errors: List[str] = []
        self._ever_connected = False
        self._lost = ''
        self._backoff = 0.1
        self._next_attempt = 0.0
        self.last_clamped: List[str] = []
        self.retries_used = 0
        self.reconnects = 0

    # --- HandBackend ------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port, find every servo, configure it; RuntimeError naming what is wrong."""
        self._open()
        try:
            self._init_servos()
        except RuntimeError:
            self._close_port()
            raise
        self._ever_connected = True

    def read(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return positions (rad), velocities (rad/s) and efforts (fraction of current_limit)."""
        state = self.sync_read_state()
        pos = self.sign * (state['position'] - self.zero) * RAD_PER_TICK
        vel = self.sign * state['velocity'] * RAD_S_PER_TICK
        eff = self.sign * state['current'] * self.unit_ma / self.current_limit
        return pos, vel, eff

    def write(self, targets: np.ndarray) -> List[str]:
        """Clamp the targets to the joint limits (warning once per change), send them."""
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (self.config.size,) or not np.all(np.isfinite(targets)):
            raise ValueError(f'need {self.config.size} finite targets, got {targets!r}')
        safe = np.clip(targets, self.config.lower, self.config.upper)
        clamped = [self.config.joint_names[i] for i in np.flatnonzero(safe != targets)]
        if clamped and clamped != self.last_clamped:
            self.log.warning(f'targets clamped to the joint limits for {", ".join(clamped)}')
        self.last_clamped = clamped
        self.sync_write_goals(self.to_ticks(safe))
        return clamped

    def set_torque(self, enabled: bool) -> None:
        """Switch the torque of every servo; on, each first holds its present position."""
        self._torque = enabled
        self._ensure_connected()
        if enabled:
            self.sync_write_goals(self.sync_read_state()['position'])
        for sid in self.ids:
            self._write(sid, Addr.TORQUE_ENABLE, 1, int(enabled))

    def hardware_errors(self) -> List[str]:
        """Return 'servo 3 (index_dip): overload' style descriptions from the last read."""
        return list(self._errors)

    def reboot_faulted(self) -> List[int]:
        """
        Reboot the servos in hardware error, configure them again, torque on; return their ids.

        Every servo holds its present position afterwards. RuntimeError naming the servo that
        does not come back (or whose error persists).
        """
        self._ensure_connected()
        ids = list(self._faulted)
        for sid in ids:
            result, _ = self._guard(self.ph.reboot, self._port, sid)
            if result != sdk.COMM_SUCCESS:
                raise RuntimeError(f'{self._name([sid])}: no answer to reboot '
                                   f'({self.ph.getTxRxResult(result)})')
        deadline = self.clock() + self.reboot_wait
        for sid in ids:  # a real servo takes a moment to boot
            while not self._ping(sid):
                if self.clock() > deadline:
                    raise RuntimeError(f'{self._name([sid])}: silent {self.reboot_wait:.1f} s '
                                       'after reboot')
                time.sleep(0.02)
        self._init_servos()  # the reboot reset the RAM: current, gains; then hold and torque
        if self._errors:
            raise RuntimeError('hardware error persists after reboot: ' + '; '.join(self._errors))
        self.log.info(f'rebooted {self._name(ids)}' if ids else 'no servo to reboot')
        return ids

    def close(self) -> None:
        """Switch the torque off (every servo that answers) and close the port."""
        if self._port is None:
            return
        failed = self._torque_off_all()
        if failed:
            self.log.error(f'could not switch the torque off on servo id(s) {failed}')
        self._close_port()
        self._ever_connected = False

    # --- one control loop -------------------------------------------------------------
    def to_ticks(self, angles: np.ndarray) -> np.ndarray:
        """Convert joint angles (rad) to Goal Position ticks."""
        return self.sign * np.rint(np.asarray(angles) / RAD_PER_TICK).astype(np.int64) + self.zero

    def sync_write_goals(self, ticks: np.ndarray) -> None:
        """Send Goal Position to every servo in one sync write (no status packets)."""
        self._ensure_connected()
        data = np.asarray(ticks, dtype='<i4').tobytes()
        for i, sid in enumerate(self.ids):
            self._writer.changeParam(sid, list(data[4 * i:4 * i + 4]))
        result = self._guard(self._writer.txPacket)
        if result != sdk.COMM_SUCCESS:
            self._lose(f'sync write failed: {self.ph.getTxRxResult(result)}')

    def sync_read_state(self) -> np.ndarray:
        """Read current, velocity and position of every servo in one sync read (STATE rows)."""
        self._ensure_connected()
        for _ in range(self.retries + 1):
            raw, alerts, silent = self._read_fast() if self.fast else self._read_chain()
            if silent is None:
                self._update_errors(alerts)
                return np.frombuffer(bytes(raw), dtype=STATE)
            self.retries_used += 1
        silent_ids = [sid for sid in self.ids if not self._ping(sid)]
        self._torque_off_all()
        if not silent_ids and self.fast:
            self._lose(f'no answer to {self.retries + 1} fast sync reads though every servo '
                       'answers a ping: firmware too old for fast sync read? '
                       'set fast_sync_read false')
        self._lose(f'no answer from {self._name(silent_ids or [silent])} after '
                   f'{self.retries + 1} sync reads: check its cable and power')

    def _read_chain(self) -> Tuple[bytearray, List[int], Optional[int]]:
        """Sync read: one status packet per servo; return (data, alerting ids, first silent)."""
        result = self._guard(self._reader.txPacket)
        if result != sdk.COMM_SUCCESS:
            self._lose(f'sync read failed: {self.ph.getTxRxResult(result)}')
        raw, alerts = bytearray(), []
        for sid in self.ids:
            data, result, error = self._guard(self.ph.readRx, self._port, sid, STATE_SIZE)
            if result != sdk.COMM_SUCCESS:
                return raw, alerts, sid
            raw += bytes(data)
            if error & ALERT:
                alerts.append(sid)
        return raw, alerts, None

    def _read_fast(self) -> Tuple[bytearray, List[int], Optional[int]]:
        """Fast sync read: one packet of ERR ID DATA CRC blocks (X-series firmware >= 46)."""
        result = self._guard(self._reader.fastSyncReadTxPacket)
        if result != sdk.COMM_SUCCESS:
            self._lose(f'fast sync read failed: {self.ph.getTxRxResult(result)}')
        block = STATE_SIZE + 4
        data, result, _ = self._guard(self.ph.fastSyncReadRx, self._port, sdk.BROADCAST_ID,
                                      block * len(self.ids))
        raw, alerts = bytearray(), []
        for k, sid in enumerate(self.ids):
            chunk = data[k * block:(k + 1) * block] if result == sdk.COMM_SUCCESS else []
            if len(chunk) != block or chunk[1] != sid:
                return raw, alerts, sid
            raw += bytes(chunk[2:2 + STATE_SIZE])
            if chunk[0] & ALERT:
                alerts.append(sid)
        return raw, alerts, None

    # --- connection -------------------------------------------------------------------
    def _open(self) -> None:
        port = sdk.PortHandler(self.port)
        try:
            ok = port.setBaudRate(self.baud)  # opens the port at that baud
        except PORT_ERRORS as exc:
            raise RuntimeError(f'cannot open the hand bus {self.port}: {exc}') from None
        if not ok:
            raise RuntimeError(f'cannot set {self.baud} baud on {self.port}')
        self._port = port
        self._reader = sdk.GroupSyncRead(port, self.ph, STATE_START, STATE_SIZE)
        self._writer = sdk.GroupSyncWrite(port, self.ph, Addr.GOAL_POSITION, 4)
        for sid in self.ids:
            self._reader.addParam(sid)
            self._writer.addParam(sid, [0, 0, 0, 0])

    def _init_servos(self) -> None:
        """Ping all, then per servo: torque off, mode, current limit, gains; hold; torque."""
        models, missing = {}, []
        for sid in self.ids:
            for _ in range(self.retries + 1):
                model, result, _ = self._guard(self.ph.ping, self._port, sid)
                if result == sdk.COMM_SUCCESS:
                    models[sid] = model
                    break
            else:
                missing.append(sid)
        if missing:
            raise RuntimeError(f'no answer from {self._name(missing)} on {self.port} at '
                               f'{self.baud} baud: check power, cabling, ids and baud rate')
        for i, sid in enumerate(self.ids):
            if models[sid] not in CURRENT_UNIT_MA:
                raise RuntimeError(f'{self._name([sid])}: model number {models[sid]} is not '
                                   'a supported X-series servo (XL330, XC330, XM430)')
            self.unit_ma[i] = CURRENT_UNIT_MA[models[sid]]
        for i, sid in enumerate(self.ids):
            limit = int(round(self.current_limit / self.unit_ma[i]))
            self._write(sid, Addr.TORQUE_ENABLE, 1, 0)
            self._write(sid, Addr.OPERATING_MODE, 1, self.mode)
            self._write(sid, Addr.CURRENT_LIMIT, 2, limit)
            self._write(sid, Addr.GOAL_CURRENT, 2, limit)
            for addr, gain in self.gains.items():
                self._write(sid, addr, 2, gain)
        self.sync_write_goals(self.sync_read_state()['position'])
        if self._torque:
            for sid in self.ids:
                self._write(sid, Addr.TORQUE_ENABLE, 1, 1)

    def _ensure_connected(self) -> None:
        if self._port is not None:
            return
        if not self._ever_connected:
            raise RuntimeError(f'hand bus {self.port} is not connected: call connect() first')
        now = self.clock()
        if now < self._next_attempt:
            raise RuntimeError(f'hand bus {self.port} lost ({self._lost}); reconnecting in '
                               f'{self._next_attempt - now:.1f} s')
        try:
            self._open()
            self._init_servos()
        except RuntimeError as exc:
            self._close_port()
            self._next_attempt = now + self._backoff
            self._backoff = min(2.0 * self._backoff, self.max_backoff)
            raise RuntimeError(f'hand bus {self.port} lost ({self._lost}); reconnect failed: '
                               f'{exc}') from None
        self._backoff, self.reconnects = 0.1, self.reconnects + 1
        self.log.info(f'hand bus {self.port} reconnected ({self._lost})')

    def _lose(self, reason: str):
        """Drop the connection (a reconnect follows on the next call) and raise."""
        self._close_port()
        self._lost = reason
        self._next_attempt = self.clock()
        raise RuntimeError(f'hand bus {self.port}: {reason}')

    def _guard(self, call, *args):
        """Run an SDK call; a port error (unplugged adapter, pty gone) loses the connection."""
        try:
            return call(*args)
        except PORT_ERRORS as exc:
            self._lose(f'port error: {exc}')

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            except PORT_ERRORS:
                pass
        self._port = self._reader = self._writer = None

    # --- per-servo helpers ------------------------------------------------------------
    def _name(self, ids: Sequence[int]) -> str:
        joints = [self.config.joint_names[self.ids.index(sid)] for sid in ids]
        label = 'servo id' if len(ids) == 1 else 'servo ids'
        return f'{label} {", ".join(map(str, ids))} ({", ".join(joints)})'

    def _ping(self, sid: int) -> bool:
        return any(self._guard(self.ph.ping, self._port, sid)[1] == sdk.COMM_SUCCESS
                   for _ in range(self.retries + 1))

    def _write(self, sid: int, addr: int, size: int, value: int) -> None:
        """Write with status, retried; RuntimeError naming the servo and the SDK's reason."""
        call = {1: self.ph.write1ByteTxRx, 2: self.ph.write2ByteTxRx,
                4: self.ph.write4ByteTxRx}[size]
        for _ in range(self.retries + 1):
            result, error = self._guard(call, self._port, sid, addr, value)
            if result == sdk.COMM_SUCCESS and not error & ~ALERT:
                return
            if result == sdk.COMM_SUCCESS:
                raise RuntimeError(f'{self._name([sid])}: writing {value} at address {addr} '
                                   f'refused: {self.ph.getRxPacketError(error)}')
        raise RuntimeError(f'{self._name([sid])}: no answer to a write at address {addr} '
                           f'({self.ph.getTxRxResult(result)})')

    def _torque_off_all(self) -> List[int]:
        """Switch the torque off everywhere it answers; return the ids that did not."""
        failed = []
        for sid in self.ids:
            for _ in range(self.retries + 1):
                try:
                    result, _ = self._guard(self.ph.write1ByteTxRx, self._port, sid,
                                            Addr.TORQUE_ENABLE, 0)
                except RuntimeError:  # the port is gone
                    return failed + self.ids[self.ids.index(sid):]
                if result == sdk.COMM_SUCCESS:
                    break
            else:
                failed.append(sid)
        return failed

    def _update_errors(self, alerts: List[int]) -> None:
        """Read Hardware Error Status of the servos whose status packets raised the alert bit."""
        errors = []
        for sid in alerts:
            value, result, _ = self._guard(self.ph.read1ByteTxRx, self._port, sid,
                                           Addr.HARDWARE_ERROR)
            names = decode_hardware_error(value) if result == sdk.COMM_SUCCESS else \
                ['hardware error (status unreadable)']
            errors += [f'{self._name([sid])}: {name}' for name in names]
        if errors and not self._errors:  # a new fault: the others let go too
            self._torque_off_all()
            self.log.error('hand hardware error, torque off: ' + '; '.join(errors))
        self._errors = errors
        self._faulted = list(alerts)
