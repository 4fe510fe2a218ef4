"""The launch-free runner leaves no process behind, reports dead nodes and bad configuration."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from deft_bringup.testing import tagged_processes, wait_until

pytestmark = pytest.mark.integration


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_leaves_no_process(make_graph):
    graph = make_graph('runner', only=['hand_driver', 'arm'])
    with graph:
        pids = [p.pid for p in graph.procs.values()]
        time.sleep(2.0)
        assert not graph.exited(), {n: graph.tail(n) for n in graph.exited()}
        # every node carries the graph's tag: the leftover check of test_demo.py can see them
        assert set(pids) <= set(tagged_processes(graph.tag))
    assert not any(alive(pid) for pid in pids)
    assert tagged_processes(graph.tag) == []


def test_a_node_with_a_bad_parameter_exits_with_a_reason(make_graph):
    graph = make_graph('badparam', only=['hand_driver'],
                       overrides={'hand_driver': {'backend': 'warp_drive'}})
    with graph:
        wait_until(lambda: graph.exited(), 30, 'the node to exit')
        assert graph.exited()['hand_driver'] != 0
        wait_until(lambda: 'warp_drive' in graph.tail('hand_driver'), 5, 'the reason in the log')
        assert 'backend' in graph.tail('hand_driver')


def test_deft_run_cli_stops_everything_on_sigterm(tmp_path):
    logs = tmp_path / 'logs'
    out_file = tmp_path / 'runner.out'
    with open(out_file, 'wb') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'deft_bringup.runner', 'sim', '--log_dir', str(logs)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: len(list(logs.glob('*.log'))) == 6, 30, 'six node logs')
        time.sleep(3.0)
        # each node runs in a session of its own (so the runner stops them in order)
        children = subprocess.run(['pgrep', '-P', str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 6, out_file.read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out = out_file.read_bytes()
        assert proc.returncode == 0, out.decode()
        assert b'started sim, perception, affordance, hand_driver, arm, episode' in out
        assert not any(alive(int(pid)) for pid in children if int(pid) != proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_nodes_die_with_a_runner_killed_by_sigkill(tmp_path):
    """A crashed runner (or test process) must not leave a graph answering on its domain."""
    logs = tmp_path / 'logs'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'deft_bringup.runner', 'sim', '--log_dir', str(logs),
         '--only', 'hand_driver', 'arm'],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: len(list(logs.glob('*.log'))) == 2, 30, 'two node logs')
        children = [int(p) for p in subprocess.run(['pgrep', '-P', str(proc.pid)],
                                                   capture_output=True, text=True).stdout.split()]
        assert len(children) == 2
        proc.kill()
        proc.wait(timeout=10)
        wait_until(lambda: not any(alive(pid) for pid in children), 20, 'the orphans to exit')
    finally:
        if proc.poll() is None:
            proc.kill()


def test_each_profile_offers_only_its_own_arguments(capsys):
    from deft_bringup.runner import parse_args

    opts = parse_args(['replay', '--bags', '/tmp/run', '--rate', '2.0'])
    assert opts.arguments['bags'] == '/tmp/run' and opts.arguments['rate'] == '2.0'
    assert opts.namespace == '/deft'
    with pytest.raises(SystemExit) as exc:
        parse_args(['sim', '--bags', '/tmp/run'])  # sim plays no bags
    assert exc.value.code == 2 and '--bags' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(['replay'])  # bags is required there, as in replay.launch.py
    assert '--bags' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(['sim', '--planning_group', 'arm'])  # MoveIt runs on the robot only
    robot = parse_args(['robot', '--planning_group', 'arm', '--namespace', '/lab'])
    assert robot.arguments['planning_group'] == 'arm' and robot.namespace == '/lab'
    assert 'bags' not in robot.arguments


def test_a_killed_node_is_respawned_and_serves_again(make_graph, probe):
    from std_srvs.srv import Trigger

    from deft_bringup.runner import Respawner

    graph = make_graph('respawn', only=['hand_driver', 'arm'])
    said = []
    with graph:
        respawner = Respawner(graph, delay=0.3, max_retries=2, say=said.append)
        assert probe.call(Trigger, 'arm/home', Trigger.Request(), timeout=30.0,
                          resend_after=2.0).success
        for restart in (1, 2):
            first = graph.procs['arm'].pid
            graph.kill('arm')  # SIGKILL: a crash
            def respawned(first=first):
                return (respawner.check() is None and graph.procs['arm'].pid != first
                        and graph.procs['arm'].poll() is None)
            wait_until(respawned, 15, 'the arm to be respawned')
            assert f'restart {restart} of 2' in ' '.join(said)
            # the respawned arm joins the graph and answers (the hand driver never stopped)
            assert probe.call(Trigger, 'arm/home', Trigger.Request(), timeout=30.0,
                              resend_after=2.0).success
            assert graph.procs['hand_driver'].poll() is None
        graph.kill('arm')  # a third crash: the retries are spent, the graph must stop
        why = None
        deadline = time.monotonic() + 5.0
        while why is None and time.monotonic() < deadline:
            why = respawner.check()
            time.sleep(0.05)
        assert why is not None and 'after 2 restarts' in why and 'arm' in why


def test_the_one_shot_bag_player_is_not_respawned(make_graph, tmp_path):
    from deft_bringup.runner import Respawner

    graph = make_graph('no_respawn', profile='replay', only=['bag_player'],
                       overrides={'bag_player': {'bags': str(tmp_path)}})  # holds no bag
    with graph:
        respawner = Respawner(graph, delay=0.1, max_retries=5, say=lambda _: None)
        wait_until(lambda: graph.exited(), 30, 'the player to refuse the missing bags')
        assert 'node bag_player exited with code' in respawner.check()


def test_node_processes_get_the_dds_profile_unless_the_caller_set_one():
    from deft_bringup.graph import DDS_PROFILE_VARIABLE
    from deft_bringup.runner import GraphProcesses

    bare = GraphProcesses([], env={'PATH': '/usr/bin'})
    assert bare.env[DDS_PROFILE_VARIABLE].endswith('config/fastdds.xml')
    own = GraphProcesses([], env={DDS_PROFILE_VARIABLE: '/etc/mine.xml'})
    assert own.env[DDS_PROFILE_VARIABLE] == '/etc/mine.xml'


def test_deft_run_respawns_a_killed_node_and_the_graph_keeps_serving(probe, tmp_path):
    import shutil

    from std_srvs.srv import Trigger

    from deft_bringup.testing import tagged_processes

    tag = f'respawn-cli-{os.getpid()}'
    env = dict(os.environ, DEFT_RUN_TAG=tag)
    cmd = [shutil.which('deft_run') or 'deft_run', 'sim', '--only', 'hand_driver', 'arm',
           '--respawn_delay', '0.5', '--log_dir', str(tmp_path)]
    runner = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        assert probe.call(Trigger, 'arm/home', Trigger.Request(), timeout=60.0,
                          resend_after=2.0).success

        def arm_pids():
            found = []
            for pid in tagged_processes(tag):
                try:
                    if b'arm_node' in Path(f'/proc/{pid}/cmdline').read_bytes():
                        found.append(pid)
                except OSError:  # gone meanwhile
                    pass
            return found
        first = arm_pids()
        assert len(first) == 1, first
        os.kill(first[0], signal.SIGKILL)  # a crash
        wait_until(lambda: arm_pids() and arm_pids() != first, 30, 'the arm to be respawned')
        assert probe.call(Trigger, 'arm/home', Trigger.Request(), timeout=60.0,
                          resend_after=2.0).success
        assert runner.poll() is None  # the graph goes on
    finally:
        os.killpg(runner.pid, signal.SIGINT)
        out = runner.communicate(timeout=30)[0].decode(errors='replace')
    assert 'node arm exited with code -9; restarting it in 0.5 s (restart 1 of 5)' in out, out
    assert runner.returncode == 0, out
    wait_until(lambda: not tagged_processes(tag), 10, 'no node left behind')


def test_dead_fast_dds_segments_are_removed_and_live_ones_kept(tmp_path):
    import fcntl
    import os

    from deft_bringup.runner import remove_dead_shm

    def segment(base):
        for name in (base, f'{base}_el', f'sem.{base}_mutex'):
            (tmp_path / name).write_bytes(b'x')

    segment('fastdds_dead0123456789ab')
    segment('fastdds_port7011')  # a dead listener's port
    segment('fastdds_live0123456789ab')
    (tmp_path / 'other_el').write_bytes(b'x')  # not Fast DDS: never touched
    held = os.open(tmp_path / 'fastdds_live0123456789ab_el', os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the live participant holds it
    try:
        removed = remove_dead_shm(str(tmp_path))
    finally:
        os.close(held)
    assert sorted(removed) == sorted([
        'fastdds_dead0123456789ab', 'fastdds_dead0123456789ab_el',
        'sem.fastdds_dead0123456789ab_mutex', 'fastdds_port7011', 'fastdds_port7011_el',
        'sem.fastdds_port7011_mutex'])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'fastdds_live0123456789ab', 'fastdds_live0123456789ab_el', 'other_el',
        'sem.fastdds_live0123456789ab_mutex']
    assert remove_dead_shm(str(tmp_path / 'missing')) == []
