"""
Latency of perception/segment through ROS while a camera streams, with each executor.

    python -m deft_perception.bench_segment_service --out results/bench.json [--repeats 20]

The path an episode takes on the robot: a camera process streams 640 x 480 colour (rgb8), depth
(32FC1) and camera_info at --rate Hz (an RGB-D camera's 30 by default), a perception node
process (the depth backend) serves perception/segment, and this process calls it with
`not_before` = now, so every answer waits for the next frame and segments it. Latency is the
caller's wall time from request to answer; CPU is the perception process's user + system
seconds per call.

The perception node is spun by `deft_common.executors.PoolExecutor` (what the nodes use) and, in
the same run, by rclpy's MultiThreadedExecutor (the baseline; its resubmission busy loop is what
PoolExecutor removes), alternating `--rounds` times. Results (medians over the calls after
`--warmup`, the load average before and after) are merged into the JSON file as
`segment_service_latency_s`.
"""

import argparse
import json
import multiprocessing
import os
from pathlib import Path
import statistics
import threading
import time
from typing import Dict, List, Optional, Sequence

from deft_common.bench_io import cpu_seconds, merge_results

NAMESPACE = '/bench_segment'
EXECUTORS = ('pool', 'rclpy')


def camera(rate_hz: float, stop) -> None:
    """Publish a static tabletop at rate_hz until `stop` is set (a child process)."""
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from deft_common import image_codec
    from deft_perception.bench_perception import CAMERA, H, W, scene

    rclpy.init()
    node = rclpy.create_node('bench_camera', namespace=NAMESPACE)
    colour_pub = node.create_publisher(Image, 'camera/color/image_raw', 2)
    depth_pub = node.create_publisher(Image, 'camera/depth/image_raw', 2)
    info_pub = node.create_publisher(CameraInfo, 'camera/color/camera_info', 2)
    rgb, depth = scene(0)
    k = [CAMERA.fx, 0.0, CAMERA.cx, 0.0, CAMERA.fy, CAMERA.cy, 0.0, 0.0, 1.0]
    period, due = 1.0 / rate_hz, time.monotonic()
    try:
        while not stop.is_set():
            header = Header(stamp=node.get_clock().now().to_msg(),
                            frame_id='camera_color_optical_frame')
            info_pub.publish(CameraInfo(header=header, width=W, height=H, k=k))
            depth_pub.publish(image_codec.to_msg(depth, '32FC1', header))
            colour_pub.publish(image_codec.to_msg(rgb, 'rgb8', header))
            due += period
            stop.wait(max(0.0, due - time.monotonic()))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def perception(executor_name: str, threads: int, stop) -> None:
    """Serve perception/segment (depth backend) spun by the named executor (a child process)."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from deft_common.executors import PoolExecutor
    from deft_perception.perception_node import PerceptionNode

    rclpy.init()
    node = PerceptionNode(namespace=NAMESPACE, parameter_overrides=[
        Parameter('backend', value='depth'), Parameter('reuse_answer', value=False),
        Parameter('frame_timeout', value=5.0)])
    executor = (PoolExecutor if executor_name == 'pool' else MultiThreadedExecutor)(threads)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    stop.wait()
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()


def calls(client_node, client, count: int, timeout: float) -> List[float]:
    """Call perception/segment `count` times with not_before = now; return the latencies."""
    from deft_interfaces.srv import Segment
    times = []
    for i in range(count):
        request = Segment.Request(prompt='', not_before=client_node.get_clock().now().to_msg())
        t0 = time.monotonic()
        future = client.call_async(request)
        while not future.done() and time.monotonic() - t0 < timeout:
            time.sleep(0.001)
        if not future.done():
            raise RuntimeError(f'call {i + 1}: no answer from perception/segment in {timeout} s')
        answer = future.result()
        if not answer.success:
            raise RuntimeError(f'call {i + 1}: segment failed: {answer.error_msg}')
        times.append(time.monotonic() - t0)
    return times


def measure(executor_name: str, opts, client_node, client) -> Dict[str, object]:
    """One round: start perception with the executor, time the calls, stop it."""
    ctx = multiprocessing.get_context('spawn')
    stop = ctx.Event()
    proc = ctx.Process(target=perception, args=(executor_name, opts.threads, stop), daemon=True)
    proc.start()
    try:
        if not client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError('perception/segment did not come up in 30 s')
        calls(client_node, client, opts.warmup, 10.0)
        cpu0 = cpu_seconds(proc.pid)
        times = calls(client_node, client, opts.repeats, 10.0)
        cpu = (cpu_seconds(proc.pid) - cpu0) / opts.repeats
    finally:
        stop.set()
        proc.join(timeout=10.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    gone = time.monotonic() + 10.0  # the next round's node must be the one answering
    while client.service_is_ready() and time.monotonic() < gone:
        time.sleep(0.05)
    return {'times': times, 'cpu': cpu}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print, and merge into the bench JSON when --out is given."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=20, help='timed calls per round')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls first per round')
    parser.add_argument('--rounds', type=int, default=2, help='rounds per executor, alternating')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--threads', type=int, default=4,
                        help="perception's executor threads (run_node's default: 4)")
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    if opts.repeats < 1 or opts.warmup < 0 or opts.rounds < 1 or opts.threads < 2 \
            or not 0 < opts.rate <= 200:
        parser.error('need --repeats >= 1, --warmup >= 0, --rounds >= 1, --threads >= 2 and '
                     '0 < --rate <= 200')
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from deft_interfaces.srv import Segment

    ctx = multiprocessing.get_context('spawn')
    stop = ctx.Event()
    cam = ctx.Process(target=camera, args=(opts.rate, stop), daemon=True)
    cam.start()
    context = rclpy.Context()  # its own: a caller (a test process) may hold the default one
    rclpy.init(context=context)
    client_node = rclpy.create_node('bench_segment_client', namespace=NAMESPACE, context=context)
    client = client_node.create_client(Segment, 'perception/segment')
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    load_before = round(os.getloadavg()[0], 2)
    runs: Dict[str, List[Dict[str, object]]] = {name: [] for name in EXECUTORS}
    try:
        for k in range(opts.rounds):
            for name in EXECUTORS:
                run = measure(name, opts, client_node, client)
                runs[name].append(run)
                print(f'round {k + 1}, {name}: median {statistics.median(run["times"]):.3f} s, '
                      f'max {max(run["times"]):.3f} s, {run["cpu"]:.3f} CPU s per call',
                      flush=True)
    finally:
        stop.set()
        cam.join(timeout=10.0)
        executor.shutdown(timeout_sec=2.0)
        client_node.destroy_node()
        context.try_shutdown()
    median = {n: statistics.median(t for r in runs[n] for t in r['times']) for n in EXECUTORS}
    cpu = {n: statistics.median(r['cpu'] for r in runs[n]) for n in EXECUTORS}
    results = {'segment_service_latency_s': {
        'value': round(median['pool'], 4), 'unit': 's',
        'baseline_rclpy_executor': round(median['rclpy'], 4),
        'ratio_rclpy_to_pool': round(median['rclpy'] / median['pool'], 2),
        'p90': {n: round(statistics.quantiles([t for r in runs[n] for t in r['times']],
                                              n=10)[-1], 4) for n in EXECUTORS}
        if opts.repeats * opts.rounds >= 2 else None,
        'cpu_s_per_call': {n: round(v, 4) for n, v in cpu.items()},
        'load_average_1min_before': load_before,
        'load_average_1min_after': round(os.getloadavg()[0], 2),
        'detail': (f'median over {opts.rounds} x {opts.repeats} calls of perception/segment '
                   f'(depth backend, not_before = now) with a 640x480 RGB-D stream at '
                   f'{opts.rate:g} Hz, the node spun by PoolExecutor ({opts.threads} threads); '
                   "baseline: rclpy's MultiThreadedExecutor, rounds alternating")}}
    print(json.dumps(results, indent=2))
    if opts.out is not None:
        merge_results(opts.out, results)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
