"""
Benchmark hand_bus_loop_hz: the Dynamixel backend's control loop against the emulated bus.

One loop = `DynamixelHand.write` (clamp + one sync write of 16 Goal Positions) + `read` (one sync
read of Present Current, Velocity and Position from 16 servos, decoded to SI units), through the
real dynamixel-sdk, against `EmulatedBusProcess` at its default settings (no latency, no loss,
in a separate process as a real bus would be). The emulator does not model the wire time at the
baud rate: at 4 Mbaud a 16-servo loop adds about 1.1 ms on a real bus (430 bytes).
"""

import argparse
import json
from pathlib import Path
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from deft_hand_driver.dynamixel_bus import DynamixelHand
from deft_hand_driver.emulated_bus import EmulatedBusProcess
from deft_hand_driver.hand_config import DEFAULT_CONFIG, HandConfig, load_hand_config

GOAL_HZ = 500.0


def _hand_config() -> HandConfig:
    source = Path(__file__).resolve().parents[1] / 'config' / DEFAULT_CONFIG
    return load_hand_config(str(source) if source.exists() else '')


def _loop_rates(config: HandConfig, repeats: int, seconds: float, fast: bool) -> List[float]:
    poses = [config.pose('half'), config.pose('closed')]
    runs: List[float] = []
    bus = EmulatedBusProcess(ids=config.servo_ids)
    try:
        hand = DynamixelHand(config, port=bus.start(), fast_sync_read=fast)
        hand.connect()
        hand.set_torque(True)
        for _ in range(repeats):
            loops, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                hand.write(poses[(loops // 50) % 2])
                hand.read()
                loops += 1
            runs.append(loops / (time.perf_counter() - t0))
        hand.close()
    finally:
        bus.close()
    return runs


def measure_bus_loop_hz(repeats: int = 5, seconds: float = 1.0) -> Dict[str, object]:
    """
    Return the median loop rate over `repeats` runs of `seconds` each, plus every run.

    `hand_bus_loop_hz` is the default driver (Sync Read); `fast_sync_read_hz` the same loop
    with `fast_sync_read` on (twice the measuring time in all).
    """
    config = _hand_config()
    runs = _loop_rates(config, repeats, seconds, fast=False)
    fast = _loop_rates(config, repeats, seconds, fast=True)
    median = float(np.median(runs))
    return {'hand_bus_loop_hz': median, 'runs_hz': runs,
            'fast_sync_read_hz': float(np.median(fast)), 'fast_runs_hz': fast,
            'servos': config.size, 'goal_hz': GOAL_HZ, 'meets_goal': median >= GOAL_HZ}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=1.0)
    parser.add_argument('--out', type=Path, default=None,
                        help='merge hand_bus_loop_hz into this JSON file (make bench)')
    opts = parser.parse_args(argv)
    if opts.repeats < 1 or not opts.seconds > 0:
        parser.error('--repeats must be >= 1 and --seconds > 0')
    measured = measure_bus_loop_hz(opts.repeats, opts.seconds)
    print(json.dumps(measured, indent=2))
    if opts.out is not None:
        results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        results['hand_bus_loop_hz'] = {
            'value': round(measured['hand_bus_loop_hz'], 1), 'unit': 'Hz',
            'goal': f">= {measured['goal_hz']}",
            'detail': (f"median over {opts.repeats} x {opts.seconds} s of one sync write of goal "
                       f"positions + one sync read of position, velocity and current of "
                       f"{measured['servos']} servos, real dynamixel-sdk against the emulated bus "
                       f"(fast sync read: {measured['fast_sync_read_hz']:.0f} Hz)")}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
