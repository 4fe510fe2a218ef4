"""
How the Dynamixel bus fails, told apart: no answer, corrupt replies, late replies, port gone.

dynamixel-sdk reports a failed reply as COMM_RX_TIMEOUT (nothing came in time) or
COMM_RX_CORRUPT (a bad CRC or a packet cut short), and flushes the input silently before every
instruction. That hides a late reply: it is thrown away, or taken for the reply to the next
instruction. Here:
- `WatchedPort` keeps the bytes the SDK would flush before an instruction (`stale`): a reply
  that came after its timeout;
- `LineWatch.classify` waits up to `late_window` after a timeout for bytes still coming: some =
  LATE, none = NO_ANSWER; CORRUPT for a bad packet (the rest of the line is drained too);
- a port raising OSError/termios.error, or that cannot be opened, is PORT_GONE (the backend);
- `fault` builds the BusFault with the servos named and what a person should check.
"""

from collections import Counter
import time
from typing import Callable, List, Sequence, Tuple

import dynamixel_sdk as sdk

from deft_hand_driver.hand_backend import BusFault

STATUS_HEADER = b'\xff\xff\xfd\x00'
SDK_TIMEOUT_MS = 2.0 * sdk.LATENCY_TIMER + 2.0  # the SDK's status timeout, plus the wire time
QUIET_S = 0.005  # a late reply is over once the line has been quiet this long
QUIET_HOLD_S = 0.5  # after a wait found the line quiet, later failures skip the wait this long
LEADS = {
    BusFault.NO_ANSWER: 'no answer from',
    BusFault.CORRUPT: 'corrupted replies (bad CRC or cut short) from',
    BusFault.LATE: f'late replies (after the {SDK_TIMEOUT_MS:.0f} ms timeout) from',
    BusFault.PORT_GONE: 'port failure talking to',
}
HINTS = {
    BusFault.NO_ANSWER: 'check the cable and power supply of the servo(s) named, and that their '
                        'ids and baud rate ({baud}) are those of the hand config',
    BusFault.CORRUPT: 'check the data cable and its connectors, the bus termination, motor power '
                      'wiring running along the data line, and that every servo is set to {baud} '
                      'baud',
    BusFault.LATE: "the host reads the replies too late: set the USB adapter's latency timer to "
                   '1 ms (/sys/bus/usb-serial/devices/ttyUSB*/latency_timer), check that Return '
                   'Delay Time (address 9) is 0 on every servo and that the machine is not '
                   'overloaded',
    BusFault.PORT_GONE: 'check the USB cable and the adapter (U2D2), and that {port} exists (a '
                        '/dev/serial/by-id/ path survives replugging); the driver reopens it when '
                        'it is back',
}


def status_ids(data: bytes) -> List[int]:
    """Return the ids of the status packets (header, id, length, 0x55) found in raw bytes."""
    ids: List[int] = []
    at = data.find(STATUS_HEADER)
    while 0 <= at and at + 7 < len(data):
        if data[at + 7] == 0x55 and data[at + 4] not in ids:
            ids.append(data[at + 4])
        at = data.find(STATUS_HEADER, at + 4)
    return ids


def pick_kind(kinds: List[str], late_found: bool) -> str:
    """Name the fault of several failed attempts: a bad packet first, then lateness."""
    if BusFault.CORRUPT in kinds:
        return BusFault.CORRUPT
    return BusFault.LATE if BusFault.LATE in kinds or late_found else BusFault.NO_ANSWER


def read_failure(corrupt: Sequence[int], silent: Sequence[int], late: bytes,
                 ids: Sequence[int]) -> Tuple[str, List[int]]:
    """
    Classify a failed sync read: (kind, servo ids concerned).

    `corrupt` and `silent` are the ids whose replies the SDK found bad or missing, `late` the
    bytes that came after the timeout, `ids` every servo of the read.
    """
    if corrupt:
        return BusFault.CORRUPT, list(corrupt)
    if late:
        came = status_ids(late)
        if sdk.BROADCAST_ID in came:  # a fast sync read's reply
            return BusFault.LATE, list(ids)
        return BusFault.LATE, [sid for sid in ids if sid in came] or list(silent)
    return BusFault.NO_ANSWER, list(silent)


def hint(kind: str, baud: int, port: str) -> str:
    """Return what a person should check for a fault of that kind."""
    return HINTS[kind].format(baud=baud, port=port)


def fault(kind: str, names: str, what: str, baud: int, port: str, ids=()) -> BusFault:
    """Build a BusFault: '<lead> <servos named> <what failed>: <what to check>'."""
    return BusFault(f'{LEADS[kind]} {names} {what}: {hint(kind, baud, port)}', kind, ids)


def again(old: BusFault) -> BusFault:
    """Copy a fault to raise it again (raising one object twice grows its traceback)."""
    return BusFault(str(old), old.kind, old.ids, old.key)


class WatchedPort(sdk.PortHandler):
    """
    A PortHandler that keeps what it finds waiting on the line before an instruction goes out.

    The SDK flushes the input before every instruction: bytes waiting there are a reply that came
    after its timeout (or noise). They collect in `stale` until the backend takes them.
    """

    def __init__(self, port_name: str):
        super().__init__(port_name)
        self.stale = bytearray()

    def clearPort(self) -> None:  # noqa: N802 (the SDK's name)
        """Keep the bytes waiting on the line, then flush it as the SDK does."""
        waiting = self.ser.in_waiting
        if waiting:
            self.stale += self.ser.read(waiting)
        self.ser.reset_input_buffer()


class LineWatch:
    """Classifies failed replies and counts failed transactions by BusFault kind."""

    def __init__(self, late_window: float):
        if not late_window >= 0:
            raise ValueError('late_window must be >= 0 s')
        self.late_window = late_window
        self.faults: Counter = Counter()
        self.stale_seen = 0  # instructions that found a late reply waiting on the line
        self.late_reads = 0  # sync reads in a row that found one
        self.quiet_until = 0.0  # time.monotonic() until which a failure skips the late wait

    def take_stale(self, port: WatchedPort) -> None:
        """Count (and drop) a late reply the SDK found waiting before an instruction."""
        if port.stale:
            del port.stale[:]
            self.stale_seen += 1
            self.faults[BusFault.LATE] += 1

    def read_done(self, stale_before: int, limit: int) -> bool:
        """
        Note a sync read that got every reply; False if too many in a row found a late one.

        A read found one when `stale_seen` grew past `stale_before`; its data may then be an
        older read's. More than `limit` such reads in a row is a fault.
        """
        self.late_reads = self.late_reads + 1 if self.stale_seen > stale_before else 0
        if self.late_reads <= limit:
            return True
        self.late_reads = 0
        return False

    def drain(self, read: Callable[[int], bytes], wait: bool = True) -> bytes:
        """
        Collect what reaches the line in `late_window` after a failed reply; b'' if it stays quiet.

        Stops QUIET_S after the last byte; without `wait`, takes only what is already coming.
        Once a wait found the line quiet, failures in the next QUIET_HOLD_S do not wait either
        (a bus of silent servos costs one wait, not one per ping).
        """
        start = time.monotonic()
        window = self.late_window if wait and start >= self.quiet_until else 0.0
        got, last = bytearray(), None
        while True:
            chunk = read(4096)
            now = time.monotonic()
            if chunk:
                got += chunk
                last = now
            elif (now - last >= QUIET_S) if last is not None else (now - start >= window):
                break
            if now - start > window + 0.1:  # a line that never goes quiet: noise
                break
            time.sleep(0.001)
        if not got and window > 0:
            self.quiet_until = time.monotonic() + QUIET_HOLD_S
        return bytes(got)

    def read_failure(self, read: Callable[[int], bytes], ids: Sequence[int],
                     corrupt: Sequence[int], silent: Sequence[int]) -> Tuple[str, List[int]]:
        """Classify a failed sync read (count it) after draining the line: (kind, ids)."""
        kind, named = read_failure(corrupt, silent, self.drain(read, wait=not corrupt), ids)
        self.faults[kind] += 1
        return kind, named

    def classify(self, result: int, read: Callable[[int], bytes]) -> Tuple[str, bytes]:
        """Classify one failed reply (count it); return its kind and the bytes that came late."""
        if result not in (sdk.COMM_RX_TIMEOUT, sdk.COMM_RX_CORRUPT):  # nothing went out
            kind, late = BusFault.PORT_GONE, b''
        else:
            late = self.drain(read, wait=result == sdk.COMM_RX_TIMEOUT)
            kind = BusFault.CORRUPT if result == sdk.COMM_RX_CORRUPT else \
                BusFault.LATE if late else BusFault.NO_ANSWER
        self.faults[kind] += 1
        return kind, late
