"""
An emulated Dynamixel Protocol 2.0 servo chain on a pseudo-terminal.

A development tool and the test fixture of the Dynamixel backend: the real SDK opens the pty's
slave path as if it were a U2D2 (`PortHandler(bus.port)`), and this module answers on the master
side. It speaks PING (unicast and broadcast), READ, WRITE, SYNC_READ, FAST_SYNC_READ,
SYNC_WRITE and REBOOT with CRC-16 (polynomial 0x8005) and byte stuffing; status packets carry the
error byte, with the alert bit (0x80) while a servo's Hardware Error Status is non-zero.

Each servo has an X-series control table (see `dynamixel_bus.Addr`) and simple dynamics: in
position modes the position follows the goal with a first-order lag `time_constant` while the
current needed (`MA_PER_TICK` per tick of error) stays under Goal Current; beyond that the
current saturates and the speed is capped. EEPROM (addresses < 64) is locked while the torque
is on, and a Goal Current above the Current Limit is refused, as on the real servos.

Faults: `latency` (s before each reply), `drop_probability` (each status packet lost with it),
`drop_next(n)` (the next n instructions lost), `missing` ids (never answer),
`set_fault(id, 'overload')` (hardware error bit, torque off; REBOOT clears it),
`set_obstacle(id, tick)` (an object: the servo cannot pass that position from the side it is
on, and while pushing against it draws the whole current limit), `set_position(id, tick)` (the
horn moved by hand with the torque off, e.g. a finger sagging during a power loss). Not
modelled: the wire time at
the baud rate, Return Delay Time, bulk read/write, and indirect addresses. `stop()` closes the
pty (the port vanishes); `start()` brings up a new one; with `link` the path stays the same (a
symlink re-pointed, like a udev by-id link). Clients in the same Python process should use
`EmulatedBusProcess`, which serves the chain from a child process.

    python -m deft_hand_driver.emulated_bus --ids 0..15 [--latency S] [--drop P]
        [--time-constant S] [--missing 3,7] [--link /tmp/hand_bus]

The command serves until SIGINT or SIGTERM, then closes the pty and removes the --link symlink.
"""

import argparse
import math
import multiprocessing
import os
import random
import select
import signal
import struct
import threading
import time
import tty
from typing import Dict, Iterable, List, Optional

HEADER = b'\xff\xff\xfd\x00'
BROADCAST = 0xFE
PING, READ, WRITE, REBOOT, STATUS = 0x01, 0x02, 0x03, 0x08, 0x55
SYNC_READ, SYNC_WRITE, FAST_SYNC_READ = 0x82, 0x83, 0x8A
ERR_RESULT, ERR_INSTRUCTION, ERR_CRC, ERR_RANGE, ERR_LENGTH, ERR_LIMIT, ERR_ACCESS = range(1, 8)
ALERT = 0x80
FAULT_BITS = {'input_voltage': 0x01, 'overheating': 0x04, 'encoder': 0x08,
              'electrical_shock': 0x10, 'overload': 0x20}
TABLE_SIZE = 256
EEPROM_END = 64
MODEL_XC330_T288 = 1220
MA_PER_TICK = 2.0


def _crc_table() -> List[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC = _crc_table()


def crc16(data: bytes, crc: int = 0) -> int:
    """Return the Dynamixel CRC-16 (polynomial 0x8005, initial value 0) of `data`."""
    table = _CRC
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def stuff(body: bytes) -> bytes:
    """Insert 0xFD after every FF FF FD in an instruction/status body (INST onwards, no CRC)."""
    if b'\xff\xff\xfd' not in body:
        return bytes(body)
    out = bytearray()
    for byte in body:
        out.append(byte)
        if out[-3:] == b'\xff\xff\xfd':
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Undo `stuff`: FF FF FD FD becomes FF FF FD."""
    if b'\xff\xff\xfd\xfd' not in body:
        return bytes(body)
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if out[-3:] == b'\xff\xff\xfd' and i + 1 < len(body) and body[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


def packet(dxl_id: int, instruction: int, params: bytes = b'') -> bytes:
    """Build a complete Protocol 2.0 packet: header, id, length, stuffed body, CRC."""
    body = stuff(bytes([instruction]) + bytes(params))
    head = HEADER + bytes([dxl_id]) + struct.pack('<H', len(body) + 2)
    crc = crc16(head + body)
    return head + body + struct.pack('<H', crc)


def status(dxl_id: int, error: int, params: bytes = b'') -> bytes:
    """Build a status packet (instruction 0x55, then the error byte)."""
    return packet(dxl_id, STATUS, bytes([error]) + bytes(params))


class Servo:
    """One X-series servo: a control table and first-order position dynamics."""

    def __init__(self, dxl_id: int, model: int = MODEL_XC330_T288, time_constant: float = 0.05,
                 clock=time.monotonic):
        self.id, self.tau, self.clock = dxl_id, time_constant, clock
        self.table = bytearray(TABLE_SIZE)
        self.missing = False
        self.set(0, 2, model)
        self.set(6, 1, 52)           # firmware version
        self.set(7, 1, dxl_id)
        self.set(8, 1, 1)            # baud rate index (57600)
        self.set(11, 1, 3)           # operating mode: position
        self.set(38, 2, 1750)        # current limit, mA
        self.set(48, 4, 4095)        # max position limit
        self.set(68, 1, 2)           # status return level
        self.set(80, 2, 0)
        self.set(84, 2, 800)
        self.set(102, 2, 1750)       # goal current
        self.set(116, 4, 2048)
        self.set(132, 4, 2048)
        self.set(144, 2, 50)         # 5.0 V
        self.set(146, 1, 30)         # degC
        self.pos = 2048.0
        self.obstacle: Optional[float] = None
        self._obstacle_side = 1.0
        self._t = clock()

    def get(self, addr: int, size: int, signed: bool = False) -> int:
        """Read a little-endian value from the control table."""
        return int.from_bytes(self.table[addr:addr + size], 'little', signed=signed)

    def set(self, addr: int, size: int, value: int) -> None:
        """Store a little-endian value (wrapped to `size` bytes) into the control table."""
        self.table[addr:addr + size] = (int(value) % (1 << (8 * size))).to_bytes(size, 'little')

    @property
    def torque(self) -> bool:
        """Return whether Torque Enable (64) is set."""
        return bool(self.table[64])

    def step(self) -> None:
        """Advance the dynamics to now and update Present Current/Velocity/Position."""
        now = self.clock()
        dt = max(0.0, now - self._t)
        self._t = now
        current = velocity = 0.0
        if self.torque and dt > 0 and self.table[11] in (3, 4, 5):
            goal = float(self.get(116, 4, signed=True))
            limit = float(self.get(102, 2)) if self.table[11] == 5 else float(self.get(38, 2))
            error = goal - self.pos
            if abs(error) * MA_PER_TICK <= limit:
                new = goal - error * math.exp(-dt / self.tau)
            else:  # saturated: constant speed at the current limit, no overshoot
                speed = limit / MA_PER_TICK / self.tau
                new = self.pos + math.copysign(min(abs(error), speed * dt), error)
            blocked = False
            if self.obstacle is not None and \
                    self._obstacle_side * (new - self.obstacle) < 0:
                new, blocked = self.obstacle, True
            velocity = (new - self.pos) / dt
            if blocked or (self.obstacle is not None and new == self.obstacle
                           and self._obstacle_side * (goal - self.obstacle) < 0):
                current = math.copysign(limit, goal - new)  # pushing: the current saturates
            else:
                current = max(-limit, min(limit, (goal - new) * MA_PER_TICK))
            self.pos = new
        self.set(126, 2, round(current))
        self.set(128, 4, round(velocity * 60.0 / 4096.0 / 0.229))
        self.set(132, 4, round(self.pos))

    def write(self, addr: int, data: bytes) -> int:
        """Apply a WRITE; return the status error number (0 = done)."""
        end = addr + len(data)
        if end > TABLE_SIZE or not data:
            return ERR_ACCESS
        if addr < EEPROM_END and self.torque and not (addr == 64 and end == 65):
            return ERR_ACCESS
        if addr <= 102 < end and addr <= 103 < end:
            goal_current = int.from_bytes(data[102 - addr:104 - addr], 'little')
            if goal_current > self.get(38, 2):
                return ERR_LIMIT
        self.step()
        if addr <= 64 < end and data[64 - addr] and self.table[70]:
            return ERR_RESULT  # a servo in hardware error refuses torque on until rebooted
        self.table[addr:end] = data
        return 0

    def fault(self, name: str) -> None:
        """Raise a hardware error (bit by name); the servo drops its torque as real ones do."""
        self.step()
        self.table[70] |= FAULT_BITS[name]
        self.table[64] = 0

    def set_obstacle(self, tick: Optional[float]) -> None:
        """Put an object at that position (None removes it); it blocks from the present side."""
        self.step()
        self.obstacle = None if tick is None else float(tick)
        if tick is not None:
            self._obstacle_side = 1.0 if self.pos >= tick else -1.0

    def move_by_hand(self, tick: float) -> None:
        """Torque off (as after a power loss) and the horn pushed to `tick`."""
        self.step()
        self.table[64] = 0
        self.pos = float(tick)
        self.step()

    def reboot(self) -> None:
        """Clear hardware errors and switch the torque off."""
        self.table[70] = 0
        self.table[64] = 0

    def error_byte(self, number: int = 0) -> int:
        """Return a status error byte: the error number plus the alert bit when faulted."""
        return number | (ALERT if self.table[70] else 0)


class EmulatedBus:
    """A chain of emulated servos served on a pty by a background thread."""

    def __init__(self, ids: Iterable[int] = range(16), latency: float = 0.0,
                 drop_probability: float = 0.0, missing: Iterable[int] = (),
                 link: Optional[str] = None, seed: Optional[int] = None,
                 time_constant: float = 0.05, model: int = MODEL_XC330_T288):
        self.servos: Dict[int, Servo] = {
            i: Servo(i, model=model, time_constant=time_constant) for i in ids}
        for i in missing:
            self.servos[i].missing = True
        self.latency, self.drop_probability, self.link = latency, drop_probability, link
        self.rng = random.Random(seed)
        self.port = ''
        self.packets = 0
        self._drop_next = 0
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._master = self._slave = -1

    # --- fault injection --------------------------------------------------------------
    def servo(self, dxl_id: int) -> Servo:
        """Return the servo with that id (KeyError if the chain has none)."""
        return self.servos[dxl_id]

    def set_missing(self, dxl_id: int, missing: bool = True) -> None:
        """Make a servo silent (unplugged) or bring it back."""
        self.servos[dxl_id].missing = missing

    def set_fault(self, dxl_id: int, name: str) -> None:
        """Raise a hardware error on one servo: one of FAULT_BITS."""
        with self._lock:
            self.servos[dxl_id].fault(name)

    def set_obstacle(self, dxl_id: int, tick: Optional[float]) -> None:
        """Block one servo at a position (ticks) as an object would; None removes it."""
        with self._lock:
            self.servos[dxl_id].set_obstacle(tick)

    def set_position(self, dxl_id: int, tick: float) -> None:
        """Switch a servo's torque off and move its horn to `tick` by hand."""
        with self._lock:
            self.servos[dxl_id].move_by_hand(tick)

    def drop_next(self, count: int = 1) -> None:
        """Lose the next `count` instruction packets on the wire: nothing answers them."""
        with self._lock:
            self._drop_next += count

    def set_latency(self, seconds: float) -> None:
        """Wait this long before each reply."""
        self.latency = seconds

    def read_table(self, dxl_id: int, addr: int, size: int, signed: bool = False) -> int:
        """Return a control-table value of one servo (dynamics advanced to now)."""
        with self._lock:
            servo = self.servos[dxl_id]
            servo.step()
            return servo.get(addr, size, signed)

    # --- the pty ---------------------------------------------------------------------
    def start(self) -> str:
        """Open a pty and serve it from a thread; return the path clients open."""
        if self._thread is not None:
            raise RuntimeError('emulated bus already running')
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        if self.link:
            tmp = f'{self.link}.tmp{os.getpid()}'
            os.symlink(self.port, tmp)
            os.replace(tmp, self.link)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name='emulated-dxl-bus', daemon=True)
        self._thread.start()
        return self.link or self.port

    def stop(self) -> None:
        """Stop serving and close the pty: the port vanishes for its clients."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1
        if self.link:
            try:
                os.unlink(self.link)
            except FileNotFoundError:
                pass

    def __enter__(self) -> 'EmulatedBus':
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # no client has the slave open yet (EIO); wait for one
                time.sleep(0.005)
                continue
            buf += chunk
            while True:
                pkt = self._take_packet(buf)
                if pkt is None:
                    break
                reply = self.handle(pkt)
                if reply:
                    if self.latency > 0:
                        time.sleep(self.latency)
                    try:
                        os.write(self._master, reply)
                    except OSError:
                        pass  # nobody listening, or the buffer is full: the reply is lost

    @staticmethod
    def _take_packet(buf: bytearray) -> Optional[bytes]:
        """Cut one whole packet (raw, stuffed) off the front of `buf`, dropping junk before it."""
        start = buf.find(HEADER)
        if start < 0:
            del buf[:max(0, len(buf) - 3)]
            return None
        del buf[:start]
        if len(buf) < 7:
            return None
        total = 7 + struct.unpack_from('<H', buf, 5)[0]
        if len(buf) < total:
            return None
        pkt = bytes(buf[:total])
        del buf[:total]
        return pkt

    # --- the protocol ------------------------------------------------------------------
    def handle(self, raw: bytes) -> bytes:
        """Answer one raw instruction packet; return the bytes the chain sends back."""
        self.packets += 1
        dxl_id = raw[4]
        crc_ok = struct.unpack('<H', raw[-2:])[0] == crc16(raw[:-2])
        body = unstuff(raw[7:-2])
        with self._lock:
            if self._drop_next > 0:
                self._drop_next -= 1
                return b''
            if not crc_ok:
                servo = self.servos.get(dxl_id)
                if dxl_id == BROADCAST or servo is None or servo.missing:
                    return b''
                return self._status(servo, ERR_CRC)
            inst, params = body[0], body[1:]
            if dxl_id == BROADCAST:
                return self._broadcast(inst, params)
            servo = self.servos.get(dxl_id)
            if servo is None or servo.missing:
                return b''
            return self._unicast(servo, inst, params)

    def _drop(self) -> bool:
        return self.drop_probability > 0 and self.rng.random() < self.drop_probability

    def _status(self, servo: Servo, number: int = 0, params: bytes = b'') -> bytes:
        if self._drop():
            return b''
        return status(servo.id, servo.error_byte(number), params)

    def _unicast(self, servo: Servo, inst: int, params: bytes) -> bytes:
        if inst == PING:
            return self._status(servo, 0, servo.table[0:2] + servo.table[6:7])
        if inst == READ:
            if len(params) != 4:
                return self._status(servo, ERR_LENGTH)
            addr, size = struct.unpack('<HH', params)
            if addr + size > TABLE_SIZE:
                return self._status(servo, ERR_ACCESS)
            servo.step()
            return self._status(servo, 0, bytes(servo.table[addr:addr + size]))
        if inst == WRITE:
            if len(params) < 3:
                return self._status(servo, ERR_LENGTH)
            number = servo.write(struct.unpack_from('<H', params)[0], params[2:])
            return self._status(servo, number)
        if inst == REBOOT:  # the status goes out before the servo restarts
            reply = self._status(servo)
            servo.reboot()
            return reply
        return self._status(servo, ERR_INSTRUCTION)

    def _broadcast(self, inst: int, params: bytes) -> bytes:
        live = [s for s in self.servos.values() if not s.missing]
        if inst == PING:
            return b''.join(self._status(s, 0, s.table[0:2] + s.table[6:7]) for s in live)
        if inst == WRITE and len(params) >= 3:
            for s in live:
                s.write(struct.unpack_from('<H', params)[0], params[2:])
            return b''
        if inst == SYNC_WRITE and len(params) >= 4:
            addr, size = struct.unpack_from('<HH', params)
            for at in range(4, len(params) - size, size + 1):
                servo = self.servos.get(params[at])
                if servo is not None and not servo.missing:
                    servo.write(addr, params[at + 1:at + 1 + size])
            return b''
        if inst in (SYNC_READ, FAST_SYNC_READ) and len(params) >= 4:
            addr, size = struct.unpack_from('<HH', params)
            if addr + size > TABLE_SIZE:
                return b''
            chain = []
            for dxl_id in params[4:]:
                servo = self.servos.get(dxl_id)
                if servo is None or servo.missing:
                    continue
                servo.step()
                chain.append(servo)
            if inst == SYNC_READ:
                return b''.join(self._status(s, 0, bytes(s.table[addr:addr + size]))
                                for s in chain)
            return self._fast_reply(chain, addr, size)
        return b''

    def _fast_reply(self, chain: List[Servo], addr: int, size: int) -> bytes:
        """One status packet from id 0xFE: per servo ERR ID DATA CRC (the last CRC ends it)."""
        if not chain or self._drop():
            return b''
        length = 1 + len(chain) * (size + 4)
        out = bytearray(HEADER + bytes([BROADCAST]) + struct.pack('<H', length) + bytes([STATUS]))
        crc = crc16(out)
        for s in chain:
            block = bytes([s.error_byte(), s.id]) + s.table[addr:addr + size]
            crc = crc16(block, crc)
            out += block + struct.pack('<H', crc)
            crc = crc16(out[-2:], crc)
        return bytes(out)


class EmulatedBusProcess:
    """
    The same bus served from a child process, driven through a pipe.

    Use this when the client runs Python in the same process: the SDK polls the port in a busy
    loop, and a serving thread would wait for the GIL on every packet (measured: the loop rate
    halves). Methods: start, stop, set_missing, set_fault, set_obstacle, set_position,
    drop_next, set_latency, read_table.
    """

    def __init__(self, **options):
        ctx = multiprocessing.get_context('fork')
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, options), daemon=True,
                                 name='emulated-dxl-bus')
        self._proc.start()
        child.close()
        self.port = ''

    def call(self, method: str, *args, timeout: float = 5.0):
        """Run a method of the bus in the child; re-raise its exception here."""
        self._conn.send((method, args))
        if not self._conn.poll(timeout):
            raise RuntimeError(f'emulated bus process did not answer {method} in {timeout} s')
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def start(self) -> str:
        """Open the pty in the child; return the path to open."""
        self.port = self.call('start')
        return self.port

    def stop(self) -> None:
        """Close the pty (the port vanishes); the process stays for a later start()."""
        self.call('stop')

    def set_missing(self, dxl_id: int, missing: bool = True) -> None:
        """See EmulatedBus.set_missing."""
        self.call('set_missing', dxl_id, missing)

    def set_fault(self, dxl_id: int, name: str) -> None:
        """See EmulatedBus.set_fault."""
        self.call('set_fault', dxl_id, name)

    def set_obstacle(self, dxl_id: int, tick: Optional[float]) -> None:
        """See EmulatedBus.set_obstacle."""
        self.call('set_obstacle', dxl_id, tick)

    def set_position(self, dxl_id: int, tick: float) -> None:
        """See EmulatedBus.set_position."""
        self.call('set_position', dxl_id, tick)

    def drop_next(self, count: int = 1) -> None:
        """See EmulatedBus.drop_next."""
        self.call('drop_next', count)

    def set_latency(self, seconds: float) -> None:
        """See EmulatedBus.set_latency."""
        self.call('set_latency', seconds)

    def read_table(self, dxl_id: int, addr: int, size: int, signed: bool = False) -> int:
        """See EmulatedBus.read_table."""
        return self.call('read_table', dxl_id, addr, size, signed)

    def close(self) -> None:
        """Stop serving and end the child process."""
        if self._proc.is_alive():
            try:
                self.call('stop', timeout=2.0)
                self._conn.send(None)
            except (OSError, RuntimeError, EOFError):
                pass
            self._proc.join(timeout=2.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=2.0)
        self._conn.close()

    def __enter__(self) -> 'EmulatedBusProcess':
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child(conn, options: dict) -> None:
    bus = EmulatedBus(**options)
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                break
            if request is None:
                break
            method, args = request
            try:
                conn.send((True, getattr(bus, method)(*args)))
            except Exception as exc:  # returned to the caller, raised there
                conn.send((False, exc))
    finally:
        bus.stop()


def parse_ids(text: str) -> List[int]:
    """Parse '0..15', '1,2,5' or '1..4,9' into a list of ids."""
    ids: List[int] = []
    for part in text.split(','):
        if '..' in part:
            low, high = part.split('..')
            ids.extend(range(int(low), int(high) + 1))
        elif part.strip():
            ids.append(int(part))
    if not ids or any(not 0 <= i < BROADCAST for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f'bad servo ids {text!r}: distinct ids in 0..253 expected')
    return ids


def main(argv: Optional[List[str]] = None) -> int:
    """Serve an emulated chain until SIGINT/SIGTERM and print the port to open."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--ids', default='0..15', help='servo ids, e.g. 0..15 or 1,2,3')
    parser.add_argument('--latency', type=float, default=0.0,
                        help='seconds before each reply (default 0)')
    parser.add_argument('--drop', type=float, default=0.0,
                        help='probability 0..1 that a status packet is lost (default 0)')
    parser.add_argument('--time-constant', type=float, default=0.05,
                        help='first-order lag of each servo towards its goal, s (default 0.05)')
    parser.add_argument('--missing', default='', help='ids that never answer, e.g. 3,7')
    parser.add_argument('--link', default=None,
                        help='a stable symlink to the pty (removed on exit)')
    parser.add_argument('--seed', type=int, default=None, help='seed of the packet loss')
    args = parser.parse_args(argv)
    if not args.latency >= 0.0:
        parser.error(f'--latency must be >= 0 s, got {args.latency}')
    if not 0.0 <= args.drop <= 1.0:
        parser.error(f'--drop must be a probability in 0..1, got {args.drop}')
    if not args.time_constant > 0.0:
        parser.error(f'--time-constant must be > 0 s, got {args.time_constant}')
    try:
        ids = parse_ids(args.ids)
        missing = parse_ids(args.missing) if args.missing else []
    except ValueError as exc:
        parser.error(str(exc))
    unknown = sorted(set(missing) - set(ids))
    if unknown:
        parser.error(f'--missing names ids {unknown} that are not in --ids')
    bus = EmulatedBus(ids, latency=args.latency, drop_probability=args.drop, missing=missing,
                      link=args.link, seed=args.seed, time_constant=args.time_constant)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(bus.start(), flush=True)
        while not stop.is_set():
            time.sleep(0.1)
    finally:
        bus.stop()  # closes the pty and removes the link
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
