"""The `main()` every DEFT node shares: one node, a multi-threaded executor, a clean shutdown."""

import faulthandler
from pathlib import Path
import signal
import sys
import threading
import traceback
from typing import Callable, Optional, Sequence, Set, Tuple

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock

from deft_common.executors import PoolExecutor
from deft_common.ros_params import Param, ParameterError, usage

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DRAIN_TIMEOUT = 5.0  # s the callbacks under way get to finish at shutdown
# s the whole stop may take (cleanup and interpreter exit); past it, the node prints every
# thread's stack to stderr (its log) and exits with 1: a stop signal always ends the process
STOP_TIMEOUT = 20.0
_LOGGED: Set[Tuple[str, str, str]] = set()


class ConfigurationError(RuntimeError):
    """A node cannot start with its parameters or its backend (a message a person can act on)."""


def internal_error(logger, where: str, exc: BaseException) -> str:
    """
    Log an unexpected exception of a callback; return the message its typed answer carries.

    The traceback is logged once per place and kind of error (a fault that repeats does not
    flood the log); the answer says where it happened and points to the log.
    """
    what = f'{type(exc).__name__}: {exc}'
    key = (where, type(exc).__name__, str(exc)[:200])
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.error(f'{where}: unexpected {what}\n{"".join(traceback.format_exception(exc))}')
    else:
        logger.error(f'{where}: unexpected {what} (again)')
    return f'internal error in {where} ({what}); see the node log'


def _drain(executor) -> None:
    """
    Let the callbacks already handed to a MultiThreadedExecutor's threads run to their end.

    rclpy 9's MultiThreadedExecutor.shutdown() destroys the executor's guard condition first and
    joins its thread pool after: a callback taken in the last spin_once but not yet started then
    fails on the destroyed guard ("cannot use Destroyable because destruction was requested",
    printed at exit as "The following exception was never retrieved"). Joining the pool first
    (nothing submits to it once spinning has stopped) runs those callbacks on a valid context.
    Coroutines suspended on an await are not waited for: nothing resumes them any more.
    """
    pool = getattr(executor, '_executor', None)  # rclpy's ThreadPoolExecutor (private)
    if pool is not None and hasattr(pool, 'shutdown'):
        pool.shutdown(wait=True)


class SideLane:
    """
    High-rate subscriptions of a node on a helper node with a thread and an executor of its own.

    rclpy 9's executors rebuild their wait set from every entity of the node at each wake-up, in
    Python, and a MultiThreadedExecutor hands each callback to its pool (several ms of CPU). On
    sim time some topics come at the simulated clock's rate, many times real time while the robot
    acts. A helper node `<name>_<suffix>` (no parameters, no rosout) spun by a
    SingleThreadedExecutor takes them with a wait set of a few entities, so the node's own
    executor serves its services and actions without queueing behind them. Its callbacks run on
    its thread: they must be thread-safe. Topic names resolve through the node (its namespace and
    remappings).
    """

    def __init__(self, node: Node, suffix: str):
        self.node = node
        self.helper = Node(f'{node.get_name()}_{suffix}', namespace=node.get_namespace(),
                           context=node.context, use_global_arguments=False,
                           start_parameter_services=False, enable_rosout=False)
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(self.helper)
        self.thread = threading.Thread(target=self.executor.spin, name=suffix, daemon=True)
        self.thread.start()

    def subscribe(self, msg_type, topic: str, callback: Callable, qos) -> None:
        """Subscribe on the helper to `topic` as the node resolves it."""
        self.helper.create_subscription(msg_type, self.node.resolve_topic_name(topic),
                                        callback, qos)

    def close(self) -> None:
        """Stop the thread and destroy the helper node (safe to call twice)."""
        if self.helper is None:
            return
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)
        self.helper.destroy_node()
        self.helper = None


class ClockThread(SideLane):
    """
    A node's /clock subscription on a side lane (every node on sim time but the one that owns it).

    /clock comes at the simulated clock's rate; on the node's own executor each message cost a
    wake-up of all its entities (with a MultiThreadedExecutor several ms: an idle node took a
    quarter of a core). The node's own /clock subscription (made by rclpy's TimeSource) is
    replaced by one on the lane; it sets the same clock, whose jump callbacks wake the node's
    timers and waits as before.
    """

    def __init__(self, node: Node):
        super().__init__(node, 'clock')
        source = node._time_source  # rclpy's TimeSource of the node (no public accessor)
        self.helper.create_subscription(
            Clock, '/clock', source.clock_callback,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        source.detach_node()  # drops the node's own /clock subscription; sim time stays on


def run_node(factory: Callable[[], Node], args: Optional[list] = None, threads: int = 4,
             params: Sequence[Param] = ()) -> int:
    """
    Build the node, spin it until SIGINT/SIGTERM, destroy it; return a process exit code.

    `-h` or `--help` before any --ros-args prints the node's parameters (`params`, its PARAMS
    table) and returns 0 without starting ROS.

    The node handles SIGINT and SIGTERM itself instead of rclpy: the context stays valid until
    the callbacks under way have finished (so a feedback or a publish in one of them does not
    fail with "context is not valid"), and the second SIGINT that every node of `ros2 launch`
    gets in a terminal (one from the terminal, one from launch) is ignored during the cleanup.
    A normal stop exits with 0 and no traceback. A node may define begin_shutdown(), called
    first, to end long callbacks (a motion) before the executor drains. A stop that has not ended
    the process within STOP_TIMEOUT prints every thread's stack and exits with 1 (never a hung
    node).

    threads = 1 spins a SingleThreadedExecutor: right for nodes whose callbacks never wait on
    others (no pool: each callback runs on the spinning thread). threads > 1 spins a
    PoolExecutor (deft_common.executors): rclpy 9's MultiThreadedExecutor without its busy loop.
    """
    argv = list(sys.argv if args is None else args)
    user = argv[1:argv.index('--ros-args')] if '--ros-args' in argv else argv[1:]
    if '-h' in user or '--help' in user:
        doc = (getattr(factory, '__doc__', None) or '').strip().split('\n\n')[0]
        print(usage(Path(argv[0]).name if argv else 'node', doc, params), end='')
        return 0
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = clock = None
    code = 0
    try:
        node = factory()
        if node.get_parameter('use_sim_time').value and not getattr(node, 'owns_clock', False):
            clock = ClockThread(node)
        executor = SingleThreadedExecutor() if threads <= 1 else \
            PoolExecutor(num_threads=threads)
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigurationError, ParameterError) as exc:
        name = node.get_name() if node is not None else 'node'
        print(f'[{name}] cannot start: {exc}', file=sys.stderr, flush=True)
        code = 2
    finally:
        for sig in STOP_SIGNALS:  # more signals now change nothing: the cleanup runs once
            signal.signal(sig, signal.SIG_IGN)
        # A watchdog outside Python (faulthandler's own thread): it fires even if the cleanup
        # or the interpreter's exit hangs in a C library holding the GIL.
        faulthandler.dump_traceback_later(STOP_TIMEOUT, exit=True)
        if node is not None and hasattr(node, 'begin_shutdown'):
            node.begin_shutdown()  # e.g. the arm stops its motion at the next step
        if executor is not None:
            _drain(executor)
            executor.shutdown(timeout_sec=DRAIN_TIMEOUT)
        if clock is not None:  # before the node: it sets the node's clock
            clock.close()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    # The signals stay ignored: a late second Ctrl-C must not turn the exit into a
    # KeyboardInterrupt (exit code -2) now that the node is gone (run_node is a process's main).
    return code
