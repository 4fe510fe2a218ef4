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

Bus faults are `BusFault`s of one kind (no answer, corrupt replies, late replies, port gone:
dxl_link tells them apart), naming the servo ids and joints and what to check; failed
transactions are counted by kind (`bus_faults()`). A sync read that fails `retries + 1` times,
or a port that fails, switches the torque off where it still can (a broadcast write first: it
needs no reply) and puts the backend into reconnect: each later read/write tries to reopen and
re-initialise the bus, with a backoff doubling from 0.1 s to `max_backoff`; meanwhile the last
failure is raised again, word for word (no countdown), so a caller can log each change once.
The re-initialised servos hold their present position (`reconnects` counts the successes, so
the caller can adopt that position as its setpoint).

A servo raising a hardware error (alert bit, then Hardware Error Status) is reported by
`hardware_errors()` and every servo lets go; `reboot_faulted()` reboots the faulted servos (the
REBOOT instruction clears the error), configures them again and puts the torque back on.
"""

import logging
import termios
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import dynamixel_sdk as sdk
import numpy as np

from deft_hand_driver import dxl_link
from deft_hand_driver.dxl_table import (
    ALERT,
    BAUD_RATES,
    CURRENT_UNIT_MA,
    POSITION_MODES,
    RAD_PER_TICK,
    RAD_S_PER_TICK,
    STATE,
    STATE_SIZE,
    STATE_START,
    Addr,
    decode_hardware_error,
)
from deft_hand_driver.hand_backend import BusFault, HandBackend
from deft_hand_driver.hand_config import HandConfig

PORT_ERRORS = (OSError, termios.error)


class DynamixelHand(HandBackend):
    """A hand of Dynamixel X-series servos on one bus (a U2D2 or similar)."""

    def __init__(self, config: HandConfig, port: str = '/dev/ttyUSB0', baud: int = 4000000,
                 operating_mode: int = 5, current_limit: float = 350.0, position_p: int = 600,
                 position_i: int = 0, position_d: int = 200, retries: int = 2,
                 max_backoff: float = 2.0, zero_ticks: Optional[Sequence[int]] = None,
                 fast_sync_read: bool = False, log=None, reboot_wait: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, late_window: float = 0.1):
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
        self.watch = dxl_link.LineWatch(late_window)  # how replies fail, counted by kind
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
        self._lost: Optional[BusFault] = None  # why the connection was dropped
        self._retry_fault: Optional[BusFault] = None  # why the last reconnect failed
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

    def bus_faults(self) -> Dict[str, int]:
        """Return how many bus transactions failed, by BusFault kind, since the start."""
        return dict(self.watch.faults)

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
                raise self._fault(self._reply_fault(result)[0], [sid], 'to reboot')
        deadline = self.clock() + self.reboot_wait
        for sid in ids:  # a real servo takes a moment to boot
            while self._ping(sid)[0] is None:
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
            self._lose(self._port_fault(f'sync write not sent ({self.ph.getTxRxResult(result)})'))

    def sync_read_state(self) -> np.ndarray:
        """Read current, velocity and position of every servo in one sync read (STATE rows)."""
        self._ensure_connected()
        self.watch.quiet_until = 0.0  # a new read: its first timeout waits for late replies
        stale_before = self.watch.stale_seen
        failures: List[Tuple[str, List[int]]] = []
        for _ in range(self.retries + 1):
            raw, alerts, corrupt, silent = self._read_fast() if self.fast else self._read_chain()
            if not corrupt and not silent:
                if self.watch.read_done(stale_before, self.retries):
                    self._update_errors(alerts)
                    return np.frombuffer(bytes(raw), dtype=STATE)
                failures = [(BusFault.LATE, list(self.ids))] * (self.retries + 1)  # in a row
                break
            failures.append(self.watch.read_failure(self._read_line, self.ids, corrupt, silent))
            self.retries_used += 1
        self._fail_read(failures, stale_before)

    def _fail_read(self, failures: List[Tuple[str, List[int]]], stale_before: int):
        """Name the fault of `failures` (one per sync read), let go, drop the connection."""
        kinds, silent = [kind for kind, _ in failures], []
        for sid in self.ids if set(kinds) == {BusFault.NO_ANSWER} else ():  # who is silent?
            model, why = self._ping(sid)
            silent += [] if model is not None else [sid]
            if why not in ('', BusFault.NO_ANSWER) or self.watch.stale_seen > stale_before:
                kinds.append(why or BusFault.LATE)  # the pings tell a late or garbled line
                break
        kind = dxl_link.pick_kind(kinds, self.watch.stale_seen > stale_before)
        ids = [sid for sid in self.ids if any(k == kind and sid in i for k, i in failures)]
        reads = f'{self.retries + 1} {"fast " if self.fast else ""}sync reads'
        if kind != BusFault.NO_ANSWER:
            self._torque_off_all(verify=False)  # the replies cannot be trusted to confirm it
            count = kinds[:len(failures)].count(kind)
            self._lose(self._fault(kind, ids or self.ids, f'in {count} of {reads}' if count
                                   else f'(found checking them after {reads} failed)'))
        self._torque_off_all()
        if not silent and self.fast:
            self._lose(BusFault(f'no answer to {reads} though every servo answers a ping: '
                                'firmware too old for fast sync read? set fast_sync_read false',
                                BusFault.NO_ANSWER))
        self._lose(self._fault(kind, silent or ids[:1], f'after {reads}'))

    def _read_chain(self) -> Tuple[bytearray, List[int], List[int], List[int]]:
        """Sync read, one status per servo: (data, alerting ids, corrupt ids, silent ids)."""
        result = self._guard(self._reader.txPacket)
        if result != sdk.COMM_SUCCESS:
            self._lose(self._port_fault(f'sync read not sent ({self.ph.getTxRxResult(result)})'))
        raw, alerts, corrupt, silent = bytearray(), [], [], []
        for sid in self.ids:  # on to the end after a failure: which servos fail tells the fault
            data, result, error = self._guard(self.ph.readRx, self._port, sid, STATE_SIZE)
            if result == sdk.COMM_SUCCESS:
                raw += bytes(data)
                if error & ALERT:
                    alerts.append(sid)
            else:
                (corrupt if result == sdk.COMM_RX_CORRUPT else silent).append(sid)
        return raw, alerts, corrupt, silent

    def _read_fast(self) -> Tuple[bytearray, List[int], List[int], List[int]]:
        """Fast sync read: one packet of ERR ID DATA CRC blocks (X-series firmware >= 46)."""
        result = self._guard(self._reader.fastSyncReadTxPacket)
        if result != sdk.COMM_SUCCESS:
            self._lose(self._port_fault('fast sync read not sent '
                                        f'({self.ph.getTxRxResult(result)})'))
        block = STATE_SIZE + 4
        data, result, _ = self._guard(self.ph.fastSyncReadRx, self._port, sdk.BROADCAST_ID,
                                      block * len(self.ids))
        if result != sdk.COMM_SUCCESS:  # one packet for all: every servo is concerned
            bad = result == sdk.COMM_RX_CORRUPT
            return bytearray(), [], self.ids if bad else [], [] if bad else self.ids
        raw, alerts = bytearray(), []
        for k, sid in enumerate(self.ids):
            chunk = data[k * block:(k + 1) * block]
            if len(chunk) != block or chunk[1] != sid:  # a servo missing from the reply
                return raw, alerts, [], [sid]
            raw += bytes(chunk[2:2 + STATE_SIZE])
            if chunk[0] & ALERT:
                alerts.append(sid)
        return raw, alerts, [], []

    # --- connection -------------------------------------------------------------------
    def _open(self) -> None:
        port = dxl_link.WatchedPort(self.port)
        try:
            ok = port.setBaudRate(self.baud)  # opens the port at that baud
        except PORT_ERRORS as exc:
            raise self._port_fault(f'cannot open the hand bus {self.port}: {exc}') from None
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
            model, why = self._ping(sid)
            if model is not None:
                models[sid] = model
            elif why != BusFault.NO_ANSWER:  # late or corrupt: the line itself is at fault
                raise self._fault(why, [sid], f'to {self.retries + 1} pings on {self.port}')
            else:
                missing.append(sid)
        if missing:
            raise self._fault(BusFault.NO_ANSWER, missing, f'on {self.port} at {self.baud} baud')
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
        if now < self._next_attempt and self._retry_fault is not None:
            raise dxl_link.again(self._retry_fault)  # word for word: no countdown in the message
        lost = self._lost
        try:
            self._open()
            self._init_servos()
        except RuntimeError as exc:
            self._close_port()
            self._next_attempt = now + self._backoff
            self._backoff = min(2.0 * self._backoff, self.max_backoff)
            if isinstance(exc, BusFault):
                kind, ids, key = exc.kind, exc.ids, exc.key
            else:  # e.g. a servo refusing its configuration
                kind, ids, key = BusFault.OTHER, (), str(exc)
            self._retry_fault = BusFault(f'hand bus {self.port} lost ({lost.kind}); reconnect '
                                         f'failed: {exc}', kind, ids, key)
            raise dxl_link.again(self._retry_fault) from None
        self._backoff, self.reconnects = 0.1, self.reconnects + 1
        self._retry_fault = None
        self.log.info(f'hand bus {self.port} reconnected (it was lost: {lost.kind})')

    def _lose(self, why: BusFault):
        """Drop the connection (a reconnect follows on the next call) and raise the fault."""
        self._close_port()
        self._lost, self._retry_fault = why, None
        self._next_attempt = self.clock()
        raise BusFault(f'hand bus {self.port}: {why}', why.kind, why.ids, why.key)

    def _guard(self, call, *args):
        """Run an SDK call; a port error (unplugged adapter, pty gone) loses the connection."""
        try:
            out = call(*args)
        except PORT_ERRORS as exc:
            self._lose(self._port_fault(f'port error ({type(exc).__name__}: {exc}), the port '
                                        'is gone'))
        if self._port is not None:
            self.watch.take_stale(self._port)  # a reply that came after its timeout
        return out

    def _read_line(self, size: int) -> bytes:
        return self._guard(self._port.readPort, size)

    def _reply_fault(self, result: int) -> Tuple[str, bytes]:  # counted; the bytes that came late
        return self.watch.classify(result, self._read_line)

    def _port_fault(self, text: str) -> BusFault:
        """Count a PORT_GONE fault and build it: `text` and what to check."""
        self.watch.faults[BusFault.PORT_GONE] += 1
        return BusFault(f'{text}: {dxl_link.hint(BusFault.PORT_GONE, self.baud, self.port)}',
                        BusFault.PORT_GONE)

    def _fault(self, kind: str, ids: Sequence[int], what: str) -> BusFault:
        """Build a BusFault of that kind naming the servos, what failed and what to check."""
        return dxl_link.fault(kind, self._name(ids), what, self.baud, self.port, ids)

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            except PORT_ERRORS:
                pass
        self._port = self._reader = self._writer = None

    # --- per-servo helpers ------------------------------------------------------------
    def _name(self, ids: Sequence[int]) -> str:
        if list(ids) == self.ids and len(ids) > 3:
            return f'all {len(ids)} servos (ids {", ".join(map(str, ids))})'
        joints = [self.config.joint_names[self.ids.index(sid)] for sid in ids]
        label = 'servo id' if len(ids) == 1 else 'servo ids'
        return f'{label} {", ".join(map(str, ids))} ({", ".join(joints)})'

    def _ping(self, sid: int) -> Tuple[Optional[int], str]:
        """Ping, retried; return (model number, '') or (None, the BusFault kind of the failure)."""
        kind = BusFault.NO_ANSWER
        for _ in range(self.retries + 1):
            model, result, _ = self._guard(self.ph.ping, self._port, sid)
            if result == sdk.COMM_SUCCESS:
                return model, ''
            kind = self._reply_fault(result)[0]
        return None, kind

    def _write(self, sid: int, addr: int, size: int, value: int) -> None:
        """Write with status, retried; RuntimeError naming the servo and the SDK's reason."""
        call = {1: self.ph.write1ByteTxRx, 2: self.ph.write2ByteTxRx,
                4: self.ph.write4ByteTxRx}[size]
        kind = BusFault.NO_ANSWER
        for _ in range(self.retries + 1):
            result, error = self._guard(call, self._port, sid, addr, value)
            if result == sdk.COMM_SUCCESS and not error & ~ALERT:
                return
            if result == sdk.COMM_SUCCESS:
                raise RuntimeError(f'{self._name([sid])}: writing {value} at address {addr} '
                                   f'refused: {self.ph.getRxPacketError(error)}')
            kind = self._reply_fault(result)[0]
        raise self._fault(kind, [sid], f'to {self.retries + 1} writes at address {addr}')

    def _torque_off_all(self, verify: bool = True) -> List[int]:
        """Switch the torque off: a broadcast (needs no reply), then checked per servo."""
        try:
            self._guard(self.ph.write1ByteTxOnly, self._port, sdk.BROADCAST_ID,
                        Addr.TORQUE_ENABLE, 0)
        except RuntimeError:  # the port is gone
            return list(self.ids)
        failed = []
        for sid in self.ids if verify else ():
            for _ in range(self.retries + 1):
                try:
                    result, _ = self._guard(self.ph.write1ByteTxRx, self._port, sid,
                                            Addr.TORQUE_ENABLE, 0)
                except RuntimeError:  # the port is gone
                    return failed + self.ids[self.ids.index(sid):]
                if result == sdk.COMM_SUCCESS or \
                        sid in dxl_link.status_ids(self._reply_fault(result)[1]):
                    break  # a late status counts: the servo did it
            else:
                failed.append(sid)
        return failed

    def _update_errors(self, alerts: List[int]) -> None:
        """Read Hardware Error Status of the servos whose status packets raised the alert bit."""
        errors = []
        for sid in alerts:
            value, result, _ = self._guard(self.ph.read1ByteTxRx, self._port, sid,
                                           Addr.HARDWARE_ERROR)
            if result == sdk.COMM_SUCCESS:
                names = decode_hardware_error(value)
            else:
                names = [f'hardware error (status unreadable: {self._reply_fault(result)[0]})']
            errors += [f'{self._name([sid])}: {name}' for name in names]
        if errors and not self._errors:  # a new fault: the others let go too
            self._torque_off_all()
            self.log.error('hand hardware error, torque off: ' + '; '.join(errors))
        self._errors = errors
        self._faulted = list(alerts)

