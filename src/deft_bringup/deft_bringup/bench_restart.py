"""
How the graph survives crashes: quick restarts, and the abort of a goal whose server died.

    python -m deft_bringup.bench_restart --out results/bench.json [--cycles 20] [--repeats 3]

- `restart_cycles_ok`: the episode node is SIGKILLed and started again at once, `--cycles`
  times; a cycle is ok when the new process answers on the graph (its fine_tune action server
  is matched and its reset_done service answers) within `--deadline` s and does not spin at
  100 % CPU (a Fast DDS failure mode after a SIGKILL, seen with stale shared-memory segments).
- `dead_server_abort_s`: the arm node is SIGKILLed while a run_episode goal moves it toward the
  pre-grasp pose; the time from the kill to the episode's SERVER_GONE abort, median over
  `--repeats`.

Both run the real nodes as processes with the graph's DDS settings (config/fastdds.xml), like
deft_run; results are merged into the JSON file with the machine's load average.
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import rclpy
from std_srvs.srv import Trigger

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import FAST_SIM, Probe, start_graph
from deft_common.bench_io import cpu_seconds

# A slow arm (seconds to the pre-grasp pose), so that the kill lands while the arm goal runs;
# the long arm_timeout is what the old code waited out (and then a second time for the cancel).
SLOW_ARM = {**FAST_SIM, 'arm': {'max_speed': 0.05, 'max_angular_speed': 0.5},
            'episode': {**FAST_SIM['episode'], 'arm_timeout': 120.0,
                        'service_timeout': 30.0}}  # arm/home is slow too


def answers(probe: Probe, client, deadline: float) -> bool:
    """Return True once the episode node's action server is matched and reset_done answers."""
    while time.monotonic() < deadline:
        if client.server_is_ready():
            try:
                probe.call(Trigger, 'reset_done', Trigger.Request(),
                           timeout=max(0.5, min(5.0, deadline - time.monotonic())),
                           resend_after=1.0)
                return True
            except AssertionError:
                pass
        time.sleep(0.05)
    return False


def restart_cycles(graph, probe: Probe, cycles: int, deadline: float = 20.0,
                   log=print) -> List[Dict[str, object]]:
    """SIGKILL and restart the episode node `cycles` times; one record per cycle."""
    from deft_interfaces.action import FineTune

    client = probe.action_client(FineTune, 'fine_tune')
    if not answers(probe, client, time.monotonic() + 60.0):
        raise RuntimeError('the episode node did not come up: ' + graph.tail('episode'))
    records = []
    for k in range(cycles):
        graph.kill('episode')  # SIGKILL to its process group, then at once:
        start = time.monotonic()
        graph.restart('episode')
        ok = answers(probe, client, start + deadline)
        took = time.monotonic() - start
        pid = graph.procs['episode'].pid
        before = cpu_seconds(pid)
        time.sleep(1.0)
        spin = cpu_seconds(pid) - before  # an idle node uses a few percent of a core
        record = {'cycle': k + 1, 'ok': bool(ok and spin < 0.8), 'seconds': round(took, 2),
                  'cpu_in_1s': round(spin, 2)}
        records.append(record)
        log(f'  cycle {k + 1:2d}/{cycles}: {"ok" if record["ok"] else "FAILED"} after '
            f'{took:.1f} s, {spin:.2f} s CPU in the next 1 s')
    return records


def run_and_kill_arm(graph, client: EpisodeClient, probe: Probe, goal):
    """
    Run an episode and SIGKILL the arm on its way to the pre-grasp pose (its own feedback).

    Return (outcome, the kill's monotonic time or None if the arm never moved, the end's).
    """
    from deft_interfaces.action import ExecuteGrasp

    killed = {}

    def on_arm_feedback(msg):  # the arm's own feedback: it is moving toward the pre-grasp pose
        if msg.feedback.stage == 'pre_grasp' and msg.feedback.progress > 0.05 and \
                'at' not in killed:
            killed['at'] = time.monotonic()
            threading.Thread(target=graph.kill, args=('arm',), daemon=True).start()

    token = probe.subscribe(ExecuteGrasp.Impl.FeedbackMessage,
                            'arm/execute_grasp/_action/feedback', on_arm_feedback)
    try:
        outcome = client.run(goal, timeout=200)
    finally:
        probe.unsubscribe(token)
    return outcome, killed.get('at'), time.monotonic()


def dead_arm_abort(graph, client: EpisodeClient, probe: Probe) -> Optional[float]:
    """Kill the arm on its way to an episode's pre-grasp pose; return s from kill to abort."""
    from deft_interfaces.action import RunEpisode

    goal = RunEpisode.Goal(task='pick up the cup', mode='prior', reward_source='sim', seed=3)
    outcome, killed, ended = run_and_kill_arm(graph, client, probe, goal)
    graph.restart('arm')
    probe.call(Trigger, 'arm/home', Trigger.Request(), timeout=60.0, resend_after=2.0)
    if killed is None or outcome.result is None or \
            outcome.result.error_code != RunEpisode.Result.SERVER_GONE:
        code = outcome.result.error_code if outcome.result else None
        print(f'  no SERVER_GONE abort (error_code {code}, phases {outcome.phases})')
        return None
    return ended - killed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run both measurements and merge them into the JSON file."""
    parser = argparse.ArgumentParser(prog='python -m deft_bringup.bench_restart',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--cycles', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--deadline', type=float, default=20.0,
                        help='s for a restarted node to answer')
    parser.add_argument('--out', type=Path, default=Path('results/bench.json'))
    opts = parser.parse_args(argv)
    logs = Path(os.environ.get('ROS_HOME', tempfile.gettempdir())) / 'bench-logs'
    rclpy.init()
    probe = Probe(name='bench_restart_probe')
    try:
        print(f'restart_cycles_ok: {opts.cycles} SIGKILL + immediate restarts of the episode node')
        graph = start_graph('bench_restart', logs, overrides=FAST_SIM, only=['episode'])
        with graph:
            records = restart_cycles(graph, probe, opts.cycles, opts.deadline)
        print(f'dead_server_abort_s: the arm SIGKILLed mid-episode, {opts.repeats} repeats')
        aborts = []
        graph = start_graph('bench_dead_arm', logs, overrides=SLOW_ARM)
        with graph:
            client = EpisodeClient(name='bench_dead_arm_client')
            try:
                client.wait_for_server(timeout=60.0)
                for k in range(opts.repeats):
                    took = dead_arm_abort(graph, client, probe)
                    print(f'  repeat {k + 1}: ' + ('no typed abort' if took is None
                                                  else f'SERVER_GONE {took:.2f} s after the kill'))
                    if took is not None:
                        aborts.append(took)
            finally:
                client.close()
    finally:
        probe.close()
        rclpy.try_shutdown()
    load = os.getloadavg()
    results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
    ok = sum(r['ok'] for r in records)
    results['restart_cycles_ok'] = {
        'value': ok, 'unit': f'cycles of {opts.cycles}', 'load_average': load,
        'detail': 'episode node SIGKILLed and restarted at once; ok = on the graph and answering '
                  f'within {opts.deadline} s and not spinning', 'cycles': records}
    results['dead_server_abort_s'] = {
        'value': round(statistics.median(aborts), 2) if aborts else None, 'unit': 's',
        'load_average': load, 'samples': [round(a, 2) for a in aborts],
        'detail': f'median over {len(aborts)} of {opts.repeats} repeats: arm SIGKILLed in the '
                  'pre-grasp motion -> run_episode aborted with SERVER_GONE'}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'restart_cycles_ok {ok}/{opts.cycles}, dead_server_abort_s '
          f'{results["dead_server_abort_s"]["value"]} (load {load[0]:.2f}) -> {opts.out}')
    return 0 if ok == opts.cycles and len(aborts) == opts.repeats else 1


if __name__ == '__main__':
    sys.exit(main())
