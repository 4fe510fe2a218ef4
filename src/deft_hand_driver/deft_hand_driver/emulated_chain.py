"""The protocol side of the emulated servo chain: fault injection and answers to packets."""

import random
import struct
import threading
from typing import Dict, Iterable, List, Optional

from deft_hand_driver.dxl_protocol import (
    BROADCAST,
    ERR_ACCESS,
    ERR_CRC,
    ERR_INSTRUCTION,
    ERR_LENGTH,
    FAST_SYNC_READ,
    HEADER,
    PING,
    READ,
    REBOOT,
    STATUS,
    SYNC_READ,
    SYNC_WRITE,
    WRITE,
    bad_crc,
    crc16,
    status,
    unstuff,
)
from deft_hand_driver.emulated_servo import MODEL_XC330_T288, TABLE_SIZE, Servo


class EmulatedChain:
    """
    A chain of emulated servos that answers raw instruction packets (`handle`), no transport.

    It speaks PING (unicast and broadcast), READ, WRITE, SYNC_READ, FAST_SYNC_READ, SYNC_WRITE
    and REBOOT; status packets carry the error byte, with the alert bit (0x80) while a servo's
    Hardware Error Status is non-zero. Not modelled: bulk read/write and indirect addresses.

    Faults: `drop_probability` (each status packet lost with it), `drop_next(n)` (the next n
    instructions lost), `corrupt_next(n)` (the next n replies arrive with a bad CRC in every
    status packet), `missing` ids (never answer), `set_fault(id, 'overload')` (hardware
    error bit, torque off; REBOOT clears it), `set_obstacle(id, tick)` (an object: the servo
    cannot pass that position from the side it is on, and while pushing against it draws the
    whole current limit), `set_position(id, tick)` (the horn moved by hand with the torque off,
    e.g. a finger sagging during a power loss).
    """

    def __init__(self, ids: Iterable[int] = range(16), drop_probability: float = 0.0,
                 missing: Iterable[int] = (), seed: Optional[int] = None,
                 time_constant: float = 0.05, model: int = MODEL_XC330_T288):
        self.servos: Dict[int, Servo] = {
            i: Servo(i, model=model, time_constant=time_constant) for i in ids}
        for i in missing:
            self.servos[i].missing = True
        self.drop_probability = drop_probability
        self.rng = random.Random(seed)
        self.packets = 0
        self._drop_next = 0
        self._corrupt_next = 0
        self.corrupted = 0  # replies sent with a bad CRC
        self._lock = threading.Lock()

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

    def corrupt_next(self, count: int = 1) -> None:
        """Garble the CRC of every status packet of the next `count` replies (not of silence)."""
        with self._lock:
            self._corrupt_next += count

    def read_table(self, dxl_id: int, addr: int, size: int, signed: bool = False) -> int:
        """Return a control-table value of one servo (dynamics advanced to now)."""
        with self._lock:
            servo = self.servos[dxl_id]
            servo.step()
            return servo.get(addr, size, signed)

    # --- the protocol ------------------------------------------------------------------
    def handle(self, raw: bytes) -> bytes:
        """Answer one raw instruction packet; return the bytes the chain sends back."""
        reply = self._answer(raw)
        if reply:
            with self._lock:
                if self._corrupt_next > 0:
                    self._corrupt_next -= 1
                    self.corrupted += 1
                    reply = bad_crc(reply)
        return reply

    def _answer(self, raw: bytes) -> bytes:
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
