"""
Start the DEFT graph without `launch`: every node its own process, from the graph description.

    deft_run sim                      # the simulated twin, logs interleaved on the terminal
    deft_run sim --params_file my.yaml --reward_source operator

A node that exits is started again after --respawn_delay s (2), at most --respawn_max_retries
times (5) each, as the launch files do (respawn); the graph stops when a node exits once more, or
the bag player (a one-shot) exits. Stops every node (SIGINT, then SIGTERM, then SIGKILL to the
process group) on Ctrl-C or SIGTERM. Every node
process gets the environment variable DEFT_RUN_TAG (the caller's, or a new unique value), so that
a check can find any process of a graph that outlived it (deft_bringup.testing.tagged_processes).
"""

import argparse
import ctypes
import fcntl
import os
from pathlib import Path
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Callable, Dict, List, Optional, Sequence
import uuid

from deft_bringup.graph import (
    DEFAULT_NAMESPACE,
    PROFILES,
    RESPAWN_DELAY,
    RESPAWN_MAX_RETRIES,
    NodeLaunch,
    dds_environment,
    declared_arguments,
    describe,
)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
TAG_VARIABLE = 'DEFT_RUN_TAG'


def ensure_ament_prefix() -> None:
    """
    Default AMENT_PREFIX_PATH to this Python's prefix when that prefix holds the DEFT packages.

    tools/setup.sh installs everything into the virtual environment `.venv`, which is then its own
    ament prefix: `.venv/bin/deft_run` works without `make` or an activated environment. A prefix
    already set (a sourced ROS install or colcon workspace) is left alone.
    """
    marker = Path(sys.prefix, 'share', 'ament_index', 'resource_index', 'packages', 'deft_bringup')
    if not os.environ.get('AMENT_PREFIX_PATH') and marker.is_file():
        os.environ['AMENT_PREFIX_PATH'] = sys.prefix


def no_install_message(prog: str, exc: OSError) -> str:
    """Explain an ament index lookup that failed because no prefix is set."""
    return (f'{prog}: cannot find the installed DEFT packages ({exc}). On a robot: source '
            "/opt/ros/$ROS_DISTRO/setup.bash and your workspace's install/setup.bash. In this "
            'tree: run `make setup` and `source .venv/bin/activate` (or use `make demo`).')


def describe_or_report(prog: str, *args, **kwargs) -> Optional[List[NodeLaunch]]:
    """
    Return describe(*args, **kwargs) for a command-line tool, or None after saying why.

    The reason goes to stderr: a bad argument, or no installed packages to read the graph's
    files from (AMENT_PREFIX_PATH, defaulted to this venv first by ensure_ament_prefix).
    """
    ensure_ament_prefix()
    try:
        return describe(*args, **kwargs)
    except ValueError as exc:
        print(f'{prog}: {exc}', file=sys.stderr)
    except OSError as exc:  # ament_index_python: AMENT_PREFIX_PATH not set
        print(no_install_message(prog, exc), file=sys.stderr)
    return None


def executable_path(node: NodeLaunch) -> str:
    """Find a node's executable: <prefix>/lib/<package>/ (colcon), the PATH or the venv's bin."""
    try:
        from ament_index_python.packages import get_package_prefix
        candidate = Path(get_package_prefix(node.package)) / 'lib' / node.package / node.executable
        if os.access(candidate, os.X_OK):
            return str(candidate)
    except (ImportError, LookupError, KeyError):
        pass
    # pip puts console scripts next to the interpreter (.venv/bin), on the PATH or not
    found = shutil.which(node.executable) or shutil.which(
        node.executable, path=str(Path(sys.executable).parent))
    if not found:
        raise FileNotFoundError(
            f'executable {node.executable!r} of package {node.package!r} not found; '
            'run `make setup` (or build the workspace with colcon and source it)')
    return found


def remove_dead_shm(directory: str = '/dev/shm') -> List[str]:
    """
    Remove the Fast DDS shared-memory segments of processes that are gone; return their names.

    Every live Fast DDS participant holds an exclusive flock on the `_el` file of each segment
    it owns (`fastdds_<id>`, `fastdds_port<N>`). A segment whose `_el` file can be locked has
    no owner: its process died (SIGKILL leaves them behind). A node restarted at once reuses
    the dead one's port numbers, opens those half-written segments and can spin in rcl_take for
    ever; removing them first lets it create fresh ones. Segments of live processes stay.
    """
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith('fastdds_') and name.endswith('_el')):
            continue
        lock = os.path.join(directory, name)
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its process lives
            base = name[:-len('_el')]
            for stale in (base, f'sem.{base}_mutex', name):
                try:
                    os.unlink(os.path.join(directory, stale))
                    removed.append(stale)
                except FileNotFoundError:
                    pass
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _die_with_parent() -> None:
    """
    In the child before exec: ask Linux to SIGTERM it when the process that started it dies.

    Nodes run in their own sessions (so a Ctrl-C in the terminal reaches the runner, which stops
    them in order); without this a runner killed with SIGKILL, or a crashed test process, would
    leave the whole graph running and answering on the same DDS domain.
    """
    if sys.platform.startswith('linux'):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class GraphProcesses:
    """The processes of a graph; a context manager that never leaves one behind."""

    def __init__(self, nodes: Sequence[NodeLaunch], log_dir: Optional[Path] = None,
                 echo: bool = False, env: Optional[Dict[str, str]] = None):
        self.nodes = list(nodes)
        self.log_dir = Path(log_dir) if log_dir else None
        self.echo = echo
        self.env = dict(os.environ if env is None else env)
        self.env.update(dds_environment(env=self.env))
        # Inherited by every node (and anything a node starts): finds leftovers after stop().
        self.tag = self.env.setdefault(TAG_VARIABLE, f'{os.getpid()}-{uuid.uuid4().hex[:12]}')
        self.procs: Dict[str, subprocess.Popen] = {}
        self._logs: Dict[str, IO] = {}
        self._threads: List[threading.Thread] = []
        self._tmp: Optional[tempfile.TemporaryDirectory] = None  # the overrides files

    def __enter__(self) -> 'GraphProcesses':
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_path(self, name: str) -> Optional[Path]:
        """Return the log file of a node (None when echoing to the terminal only)."""
        return self.log_dir / f'{name}.log' if self.log_dir else None

    def start(self) -> None:
        """Start every node in its own process group."""
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node in self.nodes:
                self._spawn(node)
        except BaseException:
            self.stop()
            raise

    def restart(self, name: str) -> None:
        """Start a node again after it exited or was killed (its log is appended to)."""
        node = next((n for n in self.nodes if n.name == name), None)
        if node is None:
            raise KeyError(f'no node {name!r} in this graph')
        if self.procs[name].poll() is None:
            raise RuntimeError(f'node {name!r} is still running')
        self._spawn(node)

    def _spawn(self, node: NodeLaunch) -> None:
        remove_dead_shm()  # a predecessor killed a moment ago must not trap the new process
        overrides_file = None
        if node.overrides:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix='deft_run_')
            overrides_file = os.path.join(self._tmp.name, f'{node.name}.overrides.yaml')
            with open(overrides_file, 'w') as f:
                f.write(node.overrides_yaml())
        cmd = [executable_path(node)] + node.ros_args(overrides_file)
        out = self._open_output(node.name)
        if self.log_dir:  # the log starts with the exact command, to reproduce a run by hand
            with open(self.log_path(node.name), 'a') as log:
                log.write('$ ' + ' '.join(shlex.quote(c) for c in cmd) + '\n')
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
                                preexec_fn=_die_with_parent)
        self.procs[node.name] = proc
        if self.echo:
            thread = threading.Thread(target=self._pump, args=(node.name, proc), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _open_output(self, name: str):
        if self.echo:
            return subprocess.PIPE
        path = self.log_path(name)
        if path is None:
            return subprocess.DEVNULL
        if name in self._logs:
            self._logs[name].close()
        self._logs[name] = open(path, 'ab')
        return self._logs[name]

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        log = open(self.log_path(name), 'ab') if self.log_dir else None
        for line in iter(proc.stdout.readline, b''):
            sys.stdout.write(f'[{name}] {line.decode(errors="replace")}')
            sys.stdout.flush()
            if log:
                log.write(line)
                log.flush()
        if log:
            log.close()

    def exited(self) -> Dict[str, int]:
        """Return {node: exit code} of the nodes that are no longer running."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def tail(self, name: str, lines: int = 20) -> str:
        """Return the last lines of a node's log (empty if it has none)."""
        path = self.log_path(name)
        if path is None or not path.is_file():
            return ''
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to one node's process group (tests use this to simulate a crash)."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node: SIGINT, then SIGTERM, then SIGKILL, each to the whole process group."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            running = [p for p in self.procs.values() if p.poll() is None]
            for proc in running:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            for proc in running:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for proc in self.procs.values():  # also reap children left in a group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for thread in self._threads:
            thread.join(timeout=2.0)
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class Respawner:
    """Starts nodes of a graph again when they exit: after a delay, a limited number of times."""

    def __init__(self, graph: 'GraphProcesses', delay: float = RESPAWN_DELAY,
                 max_retries: int = RESPAWN_MAX_RETRIES,
                 say: Callable[[str], None] = lambda text: print(text, file=sys.stderr,
                                                                 flush=True)):
        self.graph, self.delay, self.max_retries, self.say = graph, delay, max_retries, say
        self.retries: Dict[str, int] = {}
        self.due: Dict[str, float] = {}  # node -> monotonic time of its restart

    def check(self) -> Optional[str]:
        """
        Look at the processes once: schedule restarts and start those that are due.

        Return None while the graph goes on, or why it must stop (a node that may not be
        restarted, or one that exhausted its retries).
        """
        now = time.monotonic()
        respawns = {n.name: n.respawn for n in self.graph.nodes}
        for name, code in self.graph.exited().items():
            if name in self.due:
                continue
            tries = self.retries.get(name, 0)
            if not respawns.get(name, False):
                return f'node {name} exited with code {code}'
            if tries >= self.max_retries:
                return (f'node {name} exited with code {code} after {tries} restarts '
                        f'(--respawn_max_retries {self.max_retries})')
            self.retries[name] = tries + 1
            self.due[name] = now + self.delay
            self.say(f'deft_run: node {name} exited with code {code}; restarting it in '
                     f'{self.delay:g} s (restart {tries + 1} of {self.max_retries})')
        for name, when in list(self.due.items()):
            if now >= when:
                del self.due[name]
                self.graph.restart(name)
                self.say(f'deft_run: node {name} restarted')
        return None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the runner's command line: a profile, then the launch arguments it declares."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argparse.ArgumentParser(prog='deft_run', add_help=False)
    first.add_argument('profile', nargs='?', choices=PROFILES)
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(
        prog='deft_run', description=__doc__.split('\n\n')[0],
        epilog='deft_run PROFILE --help lists the options of that profile.')
    parser.add_argument('profile', choices=PROFILES, help='which graph to start')
    for name, default, description in (declared_arguments(known.profile)
                                       if known.profile else []):
        parser.add_argument(f'--{name}', default=default if default is not None else '',
                            required=default is None, help=description)
    parser.add_argument('--log_dir', default='', help='also write one log file per node here')
    parser.add_argument('--respawn_delay', type=float, default=RESPAWN_DELAY,
                        help='seconds before a node that exited is started again')
    parser.add_argument('--respawn_max_retries', type=int, default=RESPAWN_MAX_RETRIES,
                        help='restarts of each node before the graph stops (0: stop at once)')
    parser.add_argument('--only', nargs='+', metavar='NODE', default=None,
                        help='start only these nodes of the profile (e.g. hand_driver arm)')
    opts = parser.parse_args(argv)
    opts.arguments = {name: getattr(opts, name) for name, _, _ in declared_arguments(opts.profile)}
    opts.namespace = opts.arguments.get('namespace', DEFAULT_NAMESPACE)
    return opts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a graph until Ctrl-C / SIGTERM or until a node exits."""
    opts = parse_args(argv)
    nodes = describe_or_report('deft_run', opts.profile, opts.arguments, only=opts.only)
    if nodes is None:
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for node in nodes:  # before starting any: a missing executable is an install problem
        try:
            executable_path(node)
        except FileNotFoundError as exc:
            print(f'deft_run: {exc}', file=sys.stderr)
            return 2
    graph = GraphProcesses(nodes, log_dir=Path(opts.log_dir) if opts.log_dir else None, echo=True)
    code = 0
    with graph:
        print(f'deft_run: started {", ".join(n.name for n in nodes)} in {opts.namespace}',
              flush=True)
        respawner = Respawner(graph, max(0.0, opts.respawn_delay),
                              max(0, opts.respawn_max_retries))
        try:
            while not stop.is_set():
                why = respawner.check()
                if why:
                    print(f'deft_run: {why}; stopping the graph', file=sys.stderr)
                    code = 1
                    break
                stop.wait(0.2)
        except KeyboardInterrupt:
            pass
    return code


if __name__ == '__main__':
    sys.exit(main())
