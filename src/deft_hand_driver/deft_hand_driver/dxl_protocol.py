"""
Dynamixel Protocol 2.0 packets: CRC-16, byte stuffing, instruction and status packets, framing.

A packet is FF FF FD 00, the id, the length (little-endian: the body after byte stuffing plus
the two CRC bytes), the body (instruction, then parameters; a status packet's instruction is
0x55, then the error byte) and the CRC-16 (polynomial 0x8005, initial value 0) of everything
before it. Byte stuffing inserts 0xFD after every FF FF FD inside the body. Only the emulated
chain (emulated_chain) uses this codec: the real backend speaks through dynamixel-sdk.
"""

import struct
from typing import List, Optional

HEADER = b'\xff\xff\xfd\x00'
BROADCAST = 0xFE
PING, READ, WRITE, REBOOT, STATUS = 0x01, 0x02, 0x03, 0x08, 0x55
SYNC_READ, SYNC_WRITE, FAST_SYNC_READ = 0x82, 0x83, 0x8A
ERR_RESULT, ERR_INSTRUCTION, ERR_CRC, ERR_RANGE, ERR_LENGTH, ERR_LIMIT, ERR_ACCESS = range(1, 8)
ALERT = 0x80


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


def bad_crc(data: bytes) -> bytes:
    """Return the same packets with every CRC garbled (a reader sees a CRC error in each)."""
    buf, out = bytearray(data), bytearray()
    while True:
        pkt = take_packet(buf)
        if pkt is None:
            return bytes(out + buf)
        out += pkt[:-2] + bytes([pkt[-2] ^ 0xFF, pkt[-1] ^ 0xFF])


def take_packet(buf: bytearray) -> Optional[bytes]:
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
