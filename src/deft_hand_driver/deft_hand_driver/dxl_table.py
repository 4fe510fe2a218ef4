"""
The Dynamixel X-series control table as the hand driver uses it: addresses, units, models.

Units (X-series e-manual): position 4096 ticks per turn, velocity 0.229 rpm per tick, current
`CURRENT_UNIT_MA` per tick by model number. Hardware Error Status (address 70) bits by name.
"""

import math
from typing import List

import numpy as np


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


def decode_hardware_error(status: int) -> List[str]:
    """Name the bits of a Hardware Error Status byte (address 70)."""
    names = [name for bit, name in HARDWARE_ERROR_BITS.items() if status & (1 << bit)]
    unknown = status & ~sum(1 << b for b in HARDWARE_ERROR_BITS)
    return names + ([f'unknown bits 0x{unknown:02x}'] if unknown else [])
