"""
An emulated Dynamixel Protocol 2.0 servo chain on a pseudo-terminal.

A development tool and the test fixture of the Dynamixel backend: the real SDK opens the pty's
slave path as if it were a U2D2 (`PortHandler(bus.port)`), and this module answers on the master
side. Three layers: the servos' control tables and dynamics (emulated_servo.Servo), the chain
that answers Protocol 2.0 instruction packets and injects faults (emulated_chain.EmulatedChain,
on the packet codec of dxl_protocol), and here its transport, the pty.

Faults: those of EmulatedChain (`drop_probability`, `drop_next(n)`, `corrupt_next(n)`,
`missing` ids, `set_fault`, `set_obstacle`, `set_position`) plus `latency` (s from an instruction
to its reply; the chain keeps reading instructions meanwhile, so a reply later than the SDK's
timeout lands on the line during or after the next transaction, as behind a slow USB adapter).
Not modelled: the wire time at the baud rate, Return Delay Time, bulk read/write, and indirect
addresses. `stop()` closes the pty (the port vanishes: its clients get OSError, the path is
gone); `start()` brings up a new one; with `link` the path stays the same (a symlink
re-pointed, like a udev by-id link). Clients in the same Python process
should use `EmulatedBusProcess`, which serves the chain from a child process.

    python -m deft_hand_driver.emulated_bus --ids 0..15 [--latency S] [--drop P]
        [--time-constant S] [--missing 3,7] [--link /tmp/hand_bus]

The command serves until SIGINT or SIGTERM, then closes the pty and removes the --link symlink.
"""

import argparse
from collections import deque
import multiprocessing
import os
import select
import signal
import threading
import time
import tty
from typing import Iterable, List, Optional

from deft_hand_driver.dxl_protocol import BROADCAST, take_packet
from deft_hand_driver.emulated_chain import EmulatedChain
from deft_hand_driver.emulated_servo import MODEL_XC330_T288


class EmulatedBus(EmulatedChain):
    """A chain of emulated servos served on a pty by a background thread."""

    def __init__(self, ids: Iterable[int] = range(16), latency: float = 0.0,
                 drop_probability: float = 0.0, missing: Iterable[int] = (),
                 link: Optional[str] = None, seed: Optional[int] = None,
                 time_constant: float = 0.05, model: int = MODEL_XC330_T288):
        super().__init__(ids, drop_probability=drop_probability, missing=missing, seed=seed,
                         time_constant=time_constant, model=model)
        self.latency, self.link = latency, link
        self.port = ''
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._master = self._slave = -1

    def set_latency(self, seconds: float) -> None:
        """Send each reply this long after its instruction arrived."""
        self.latency = seconds

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
        pending: deque = deque()  # (when due, reply), in order: replies never overtake
        while not self._stop.is_set():
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                self._send(pending.popleft()[1])
            wait = min(0.05, max(0.0, pending[0][0] - now)) if pending else 0.05
            ready, _, _ = select.select([self._master], [], [], wait)
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
                pkt = take_packet(buf)
                if pkt is None:
                    break
                reply = self.handle(pkt)
                if reply and (self.latency > 0 or pending):
                    pending.append((time.monotonic() + self.latency, reply))
                elif reply:
                    self._send(reply)

    def _send(self, reply: bytes) -> None:
        try:
            os.write(self._master, reply)
        except OSError:
            pass  # nobody listening, or the buffer is full: the reply is lost


class EmulatedBusProcess:
    """
    The same bus served from a child process, driven through a pipe.

    Use this when the client runs Python in the same process: the SDK polls the port in a busy
    loop, and a serving thread would wait for the GIL on every packet (measured: the loop rate
    halves). Methods: start, stop, set_missing, set_fault, set_obstacle, set_position,
    drop_next, corrupt_next, set_latency, read_table.
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

    def corrupt_next(self, count: int = 1) -> None:
        """See EmulatedBus.corrupt_next."""
        self.call('corrupt_next', count)

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
                        help='seconds from an instruction to its reply (default 0)')
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
