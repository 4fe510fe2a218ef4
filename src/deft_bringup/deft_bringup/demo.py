"""
`make demo`: bring up the whole DEFT graph against the simulated twin, run one episode, shut down.

Every node runs as its own process (the graph description of deft_bringup.graph); one
run_episode goal goes through an action client; its feedback phases and result are printed.
"""

import argparse
import os
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

import rclpy

from deft_bringup.client import EpisodeClient
from deft_bringup.graph import describe
from deft_bringup.runner import GraphProcesses
from deft_interfaces.action import RunEpisode


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the demo's options."""
    parser = argparse.ArgumentParser(prog='deft_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', default='pick up the cup', help='task text')
    parser.add_argument('--object_prompt', default='', help='Segment prompt ("" = salient)')
    parser.add_argument('--mode', default='prior', help='prior | sample | mean')
    parser.add_argument('--seed', type=int, default=0, help='scene and residual seed')
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds for the episode')
    parser.add_argument('--startup_timeout', type=float, default=60.0,
                        help='seconds for the graph to come up')
    parser.add_argument('--log_dir', default='', help='node logs (default .ros/demo/<time>)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; exit 0 when the episode succeeded."""
    opts = parse_args(argv)
    log_root = Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))
    log_dir = Path(opts.log_dir) if opts.log_dir else \
        log_root / 'demo' / time.strftime('%Y%m%d-%H%M%S')
    nodes = describe('sim')
    print(f'DEFT demo: starting {len(nodes)} nodes ({", ".join(n.name for n in nodes)}) '
          f'in {nodes[0].namespace}; logs in {log_dir}', flush=True)
    rclpy.init()
    code = 1
    client = None
    try:
        with GraphProcesses(nodes, log_dir=log_dir) as graph:
            client = EpisodeClient(namespace=nodes[0].namespace, name='demo_client')
            started = time.monotonic()
            while not client.wait_for_server(timeout=0.5):
                if graph.exited() or time.monotonic() - started > opts.startup_timeout:
                    return report_dead(graph, opts.startup_timeout)
            if not client.wait_for_camera(opts.startup_timeout):
                print('no camera frames from the simulated world', file=sys.stderr)
                return report_dead(graph, opts.startup_timeout)
            print(f'graph up in {time.monotonic() - started:.1f} s; sending run_episode '
                  f'(task "{opts.task}", mode {opts.mode}, reward sim)', flush=True)
            goal = RunEpisode.Goal(task=opts.task, object_prompt=opts.object_prompt,
                                   mode=opts.mode, reward_source='sim', seed=opts.seed)
            t0 = time.monotonic()

            def show(fb):
                print(f'  [{time.monotonic() - t0:5.1f} s] {fb.phase:<10} {fb.detail}', flush=True)

            outcome = client.run(goal, opts.timeout, on_feedback=show)
            if not outcome.accepted:
                print('goal rejected (see the episode node log: '
                      f'{graph.log_path("episode")})', file=sys.stderr)
                return 1
            r = outcome.result
            print(f'result: {outcome.status_name}\n  success: {str(r.success).lower()}\n'
                  f'  reward: {r.reward:.3f}\n  message: {r.message}\n'
                  f'  phases: {" -> ".join(outcome.phases)}', flush=True)
            if r.record.xi:
                print(f'  xi ({len(r.record.xi)} parameters): ' + ', '.join(
                    f'{n}={v:.3f}' for n, v in
                    list(zip(r.record.parameter_names, r.record.xi))[:6]) + ', ...', flush=True)
            code = 0 if r.success else 1
    except TimeoutError as exc:
        print(f'deft_demo: {exc}', file=sys.stderr)
    finally:
        if client:
            client.close()
        rclpy.try_shutdown()
    print('graph shut down', flush=True)
    return code


def report_dead(graph: GraphProcesses, timeout: float) -> int:
    """Explain why the graph did not come up."""
    dead = graph.exited()
    if not dead:
        print(f'run_episode did not appear within {timeout} s', file=sys.stderr)
    for name, rc in dead.items():
        print(f'node {name} exited with code {rc}:\n{graph.tail(name)}', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
