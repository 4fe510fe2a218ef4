"""
`make demo`: bring up the whole DEFT graph against the simulated twin, fine-tune, shut down.

Every node runs as its own process (the graph description of deft_bringup.graph). By default one
fine_tune goal ("pick up the cup", N = 30 episodes, M = 10 warm-up, E = 5 elites, sim reward)
goes through an action client, with a line per episode (its reward and the phases it went
through), then a result block (`success: true` or `false`); the run's report (reward curve PNG and
summary) is written and its path printed, then the twin's task success over the first and the last
episodes (`--require_learning`: exit 0 only when the last did better). `--policy_trials K` then
trains the residual policy pi on the run's best episodes (deft_train_policy) and runs it zero-shot
on K test configurations of the twin. `--single` sends one run_episode goal instead and prints its
feedback phases and result. `make demo` runs it with a prior learned from simulated human
demonstrations (see the Makefile).
"""

import argparse
import os
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

import rclpy
from rclpy.signals import SignalHandlerOptions

from deft_bringup.client import EpisodeClient
from deft_bringup.runner import GraphProcesses, describe_or_report
from deft_interfaces.action import FineTune, RunEpisode


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the demo's options."""
    parser = argparse.ArgumentParser(prog='deft_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', default='pick up the cup', help='task text')
    parser.add_argument('--object_prompt', default='', help='Segment prompt ("" = salient)')
    parser.add_argument('--mode', default='prior', help='prior | sample | mean')
    parser.add_argument('--seed', type=int, default=0, help='scene and residual seed')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds for one episode (a run gets this per episode)')
    parser.add_argument('--single', action='store_true',
                        help='one run_episode goal instead of a fine_tune run')
    parser.add_argument('--episodes', type=int, default=30, help='fine_tune: N episodes')
    parser.add_argument('--warmup', type=int, default=10, help='fine_tune: M warm-up episodes')
    parser.add_argument('--elites', type=int, default=5, help='fine_tune: E elites')
    parser.add_argument('--prior', default='affordance', choices=('affordance', 'heuristic'),
                        help='fine_tune: the prior (heuristic = the "real-world only" baseline)')
    parser.add_argument('--run_id', default='', help='fine_tune: run id (default demo-<time>)')
    parser.add_argument('--resume', metavar='RUN_ID', default='',
                        help='continue the fine_tune run RUN_ID from its last finished episode '
                             '(its stored N, M, E, prior and seed; give its --task)')
    parser.add_argument('--affordance_checkpoint', default='',
                        help='affordance model checkpoint (deft_affordance_recipe); default: '
                             'the geometric fake prior')
    parser.add_argument('--require_learning', action='store_true',
                        help='fine_tune: succeed only when the last episodes beat the first ones '
                             '(task success in the twin; the first and last 10, or a third of N)')
    parser.add_argument('--policy_trials', type=int, default=0,
                        help='fine_tune: then train the residual policy pi (cVAE) on the run and '
                             'run it zero-shot on this many test configurations of the twin')
    parser.add_argument('--policy_elites', type=int, default=10,
                        help='best episodes of the run pi is trained on (the paper: 10)')
    parser.add_argument('--policy_seed', type=int, default=900000,
                        help='seed of the first test configuration pi runs on')
    parser.add_argument('--allow_random', action='store_true',
                        help='let the affordance node load a checkpoint with randomly initialised '
                             'parts (the recipe trains with a random CLIP text tower when no CLIP '
                             'weights are on the machine)')
    parser.add_argument('--sim_task', default='',
                        help='MuJoCo task of the twin (default: the one whose text is --task)')
    parser.add_argument('--startup_timeout', type=float, default=60.0,
                        help='seconds for the graph to come up')
    parser.add_argument('--log_dir', default='', help='node logs (default .ros/demo/<time>)')
    opts = parser.parse_args(argv)
    if opts.policy_trials < 0 or opts.policy_elites < 1:
        parser.error('need --policy_trials >= 0 and --policy_elites >= 1')
    if opts.resume and (opts.single or opts.run_id):
        parser.error('--resume RUN_ID continues a fine_tune run: without --single and --run_id')
    if not opts.single and not 0 < opts.warmup <= opts.episodes:
        parser.error('need 0 < --warmup <= --episodes')
    if not 0 < opts.elites <= opts.warmup and not opts.single:
        parser.error('need 0 < --elites <= --warmup')
    return opts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; exit 0 when the run (or the single episode) succeeded."""
    opts = parse_args(argv)
    log_root = Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))
    log_dir = Path(opts.log_dir) if opts.log_dir else \
        log_root / 'demo' / time.strftime('%Y%m%d-%H%M%S')
    try:
        sim_task = opts.sim_task or sim_task_of(opts.task)
    except ValueError as exc:
        print(f'deft_demo: {exc}', file=sys.stderr)
        return 2
    overrides = {'sim': {'mujoco_task': sim_task}}
    if opts.allow_random:
        overrides['affordance'] = {'allow_random': True}
    nodes = describe_or_report('deft_demo', 'sim',
                               {'affordance_checkpoint': opts.affordance_checkpoint},
                               overrides=overrides)
    if nodes is None:
        return 2
    print(f'DEFT demo: starting {len(nodes)} nodes ({", ".join(n.name for n in nodes)}) '
          f'in {nodes[0].namespace}; logs in {log_dir}', flush=True)
    # Ctrl-C is a KeyboardInterrupt in this thread only: rclpy's own handler would shut the
    # context down, and the cancelled goal's result could not come back
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
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
            print(f'graph up in {time.monotonic() - started:.1f} s; {prior_text(opts)}',
                  flush=True)
            if opts.single:
                code = single_episode(opts, client, graph)
            else:
                code = fine_tune(opts, client, graph)
    except (TimeoutError, FileNotFoundError) as exc:  # FileNotFoundError: a node not installed
        print(f'deft_demo: {exc}', file=sys.stderr)
    except KeyboardInterrupt:  # before a goal was sent (a goal's own wait cancels it)
        print('interrupted', file=sys.stderr)
        code = 130
    finally:
        if client:
            client.close()
        rclpy.try_shutdown()
    print('graph shut down', flush=True)
    return code


def prior_text(opts) -> str:
    """Say which prior the episodes start from."""
    if opts.prior == 'heuristic' and not opts.single:
        return ('prior: the heuristic ("real-world only": box centre, random wrist rotation, '
                'half-closed hand)')
    if opts.affordance_checkpoint:
        return f'prior: the affordance model {opts.affordance_checkpoint}'
    return 'prior: the geometric fake prior (no --affordance_checkpoint: a named dry-run backend)'


def sim_task_of(text: str) -> str:
    """Return the twin's task id whose task text is `text`; ValueError listing them otherwise."""
    from deft_sim.tasks import TASK_SPECS
    by_text = {spec.text: name for name, spec in TASK_SPECS.items()}
    if text.strip().lower() not in by_text:
        raise ValueError(f'no simulated task has the text {text!r}: give --sim_task, or one of '
                         + ', '.join(repr(t) for t in by_text))
    return by_text[text.strip().lower()]


def single_episode(opts, client: EpisodeClient, graph: GraphProcesses) -> int:
    """Send one run_episode goal, print its phases and result; 0 when it succeeded."""
    print(f'sending run_episode (task "{opts.task}", mode {opts.mode}, reward sim)', flush=True)
    goal = RunEpisode.Goal(task=opts.task, object_prompt=opts.object_prompt,
                           mode=opts.mode, reward_source='sim', seed=opts.seed)
    t0 = time.monotonic()

    def show(fb):
        print(f'  [{time.monotonic() - t0:5.1f} s] {fb.phase:<10} {fb.detail}', flush=True)

    outcome = client.run(goal, opts.timeout, on_feedback=show)
    if not outcome.accepted:
        print(f'goal rejected (see the episode node log: {graph.log_path("episode")})',
              file=sys.stderr)
        return 1
    if outcome.result is None:
        return 130  # interrupted, and no result came
    r = outcome.result
    print(f'result: {outcome.status_name}\n  success: {str(r.success).lower()}\n'
          f'  reward: {r.reward:.3f}\n  message: {r.message}\n'
          f'  phases: {" -> ".join(outcome.phases)}', flush=True)
    if r.record.xi:
        print(f'  xi ({len(r.record.xi)} parameters): ' + ', '.join(
            f'{n}={v:.3f}' for n, v in
            list(zip(r.record.parameter_names, r.record.xi))[:6]) + ', ...', flush=True)
    return 0 if r.success else 1


def fine_tune(opts, client: EpisodeClient, graph: GraphProcesses) -> int:
    """Run Algorithm 1 through fine_tune with a line per episode; 0 when the run finished."""
    if opts.resume:  # the stored settings: only the task (the twin's scene) is sent
        run_id = opts.resume
        print(f'fine_tune "{opts.task}": resuming run {run_id}', flush=True)
        goal = FineTune.Goal(task=opts.task, run_id=run_id, resume=True, seed=-1)
    else:
        run_id = opts.run_id or time.strftime('demo-%Y%m%d-%H%M%S')
        print(f'fine_tune "{opts.task}": N={opts.episodes}, M={opts.warmup}, E={opts.elites}, '
              f'prior {opts.prior}, reward sim, run {run_id}', flush=True)
        goal = FineTune.Goal(task=opts.task, object_prompt=opts.object_prompt,
                             episodes=opts.episodes, warmup_episodes=opts.warmup,
                             elites=opts.elites, reward_source='sim', optimizer='cem',
                             prior=opts.prior, run_id=run_id, seed=opts.seed)
    t0 = time.monotonic()
    phases: list = []  # the phases of the episode under way

    def show(fb):
        if fb.phase == 'perceive':  # an episode starts (the run's first reset comes before it)
            phases.clear()
        if fb.phase not in ('warmup', 'refit'):
            if not phases or phases[-1] != fb.phase:
                phases.append(fb.phase)
            return
        # warmup / refit: sent once per finished episode, after its phases
        std = sum(fb.std) / len(fb.std) if fb.std else float('nan')
        stage = 'warm-up' if fb.phase == 'warmup' else 'CEM refit'
        print(f'  [{time.monotonic() - t0:6.1f} s] episode {fb.episode:>3}/{fb.episodes}: '
              f'reward {fb.last_reward:.3f}, best {fb.best_reward:.3f} ({stage}, mean std '
              f'{std:.3f}); phases {" > ".join(phases)}', flush=True)
        phases.clear()

    outcome = client.fine_tune(goal, opts.timeout * opts.episodes, on_feedback=show)
    if not outcome.accepted:
        print(f'goal rejected (see the episode node log: {graph.log_path("episode")})',
              file=sys.stderr)
        return 1
    resume = f'resume it with: deft_demo --task "{opts.task}" --resume {run_id}'
    if outcome.result is None:  # interrupted, no result: the finished episodes are stored
        print(f'run {run_id} interrupted; {resume}', flush=True)
        return 130
    r = outcome.result
    rewards = list(r.rewards)
    print(f'result: {outcome.status_name}\n  success: {str(bool(r.success)).lower()}\n'
          f'  episodes: {len(rewards)}\n  best reward: {r.best_reward:.3f}\n'
          f'  message: {r.message}', flush=True)
    print(f'  run directory: {r.run_dir}\n  report: {Path(r.run_dir) / "report.png"}',
          flush=True)
    if outcome.interrupted:
        print(f'interrupted after {len(rewards)} episodes; {resume}', flush=True)
        return 130
    if not r.success:
        return 1
    learned = print_learning(Path(r.run_dir))
    if opts.policy_trials:
        run_policy(opts, client, graph, Path(r.run_dir))
    if opts.require_learning:
        print(f'demo: the last episodes {"beat" if learned else "did not beat"} the first ones'
              f'\n  success: {str(learned).lower()}', flush=True)
        return 0 if learned else 1
    return 0


def print_learning(run_dir: Path) -> bool:
    """
    Print the first and last episodes' task success (reward where the source has no verdict).

    The first and last 10 episodes (a third of the run when it is shorter than 30); True when
    the last ones did better.
    """
    from deft_common.runs import RunStore

    entries = RunStore(run_dir.parent, run_dir.name).episodes()
    k = min(10, max(1, len(entries) // 3))
    first, last = entries[:k], entries[-k:]
    known = all(e.task_success is not None for e in entries)
    reward = [sum(e.reward for e in part) / k for part in (first, last)]
    if known:
        done = [sum(bool(e.task_success) for e in part) for part in (first, last)]
        print(f'learning (task success in the twin, per episode):\n'
              f'  first {k} episodes: {done[0]}/{k} done (mean reward {reward[0]:.3f})\n'
              f'  last {k} episodes: {done[1]}/{k} done (mean reward {reward[1]:.3f})', flush=True)
        return done[1] > done[0]
    print(f'learning (mean reward; the reward source gives no task verdict):\n'
          f'  first {k} episodes {reward[0]:.3f}, last {k} {reward[1]:.3f}', flush=True)
    return reward[1] > reward[0]


def run_policy(opts, client: EpisodeClient, graph: GraphProcesses, run_dir: Path) -> None:
    """Train pi on the run's best episodes, then run it once on each test configuration."""
    import subprocess

    elites = opts.policy_elites
    print(f'residual policy pi: training the cVAE on the {elites} best episodes of '
          f'{run_dir.name} (deft_train_policy)', flush=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'deft_policy.train_cli', str(run_dir),
                           '--model', 'cvae', '--elites', str(elites), '--threads', '1',
                           '--quiet'], capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        print(f'  {line}', flush=True)
    if proc.returncode != 0:
        print(f'  deft_train_policy failed (exit {proc.returncode}): pi is not run', flush=True)
        return
    print(f'  trained in {time.monotonic() - t0:.0f} s; pi runs zero-shot (no further '
          f'fine-tuning) on {opts.policy_trials} test configurations, and the prior alone on '
          'the same ones (the paper\'s "affordance model only")', flush=True)
    done = {'policy': 0, 'prior': 0}
    for k in range(opts.policy_trials):
        seed = opts.policy_seed + k
        shown = []
        for mode in ('policy', 'prior'):
            reset = client.reset_sim(seed, 'test', opts.startup_timeout)
            if not reset.success:
                shown.append(f'{mode}: sim/reset failed: {reset.message}')
                continue
            goal = RunEpisode.Goal(task=opts.task, object_prompt=opts.object_prompt, mode=mode,
                                   run_id=run_dir.name, reward_source='sim', seed=-1)
            r = client.run(goal, opts.timeout).result
            if r is None or not r.success:
                shown.append(f'{mode}: the episode failed: '
                             f'{r.message if r is not None else "no result"}')
                continue
            ok = r.task_success == RunEpisode.Result.TASK_DONE
            done[mode] += ok
            shown.append(f'{"pi" if mode == "policy" else "prior"} reward {r.reward:.3f} '
                         f'({"done" if ok else "not done"})')
        where = reset.message.replace('object placed ', '')
        print(f'  test configuration {where}: {", ".join(shown)}', flush=True)
    print(f'  on {opts.policy_trials} test configurations: pi {done["policy"]} done, the prior '
          f'alone {done["prior"]}', flush=True)


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
