"""
One emulated Dynamixel X-series servo: its control table and simple dynamics.

The control table has the addresses of `dxl_table.Addr`. In position modes the position
follows the goal with a first-order lag `time_constant` while the current needed (`MA_PER_TICK`
per tick of error) stays under Goal Current; beyond that the current saturates and the speed is
capped. EEPROM (addresses < 64) is locked while the torque is on, and a Goal Current above the
Current Limit is refused, as on the real servos. A hardware error (FAULT_BITS) drops the torque
and sets the alert bit of every status packet until a REBOOT.
"""

import math
import time
from typing import Optional

from deft_hand_driver.dxl_protocol import ALERT, ERR_ACCESS, ERR_LIMIT, ERR_RESULT

FAULT_BITS = {'input_voltage': 0x01, 'overheating': 0x04, 'encoder': 0x08,
              'electrical_shock': 0x10, 'overload': 0x20}
TABLE_SIZE = 256
EEPROM_END = 64
MODEL_XC330_T288 = 1220
MA_PER_TICK = 2.0


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
