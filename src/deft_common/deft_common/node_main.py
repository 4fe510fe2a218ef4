"""The `main()` every DEFT node shares: one node, a multi-threaded executor, a clean shutdown."""

import sys
from typing import Callable, Optional

import rclpy
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

from deft_common.ros_params import ParameterError


class ConfigurationError(RuntimeError):
    """A node cannot start with its parameters or its backend (a message a person can act on)."""


def run_node(factory: Callable[[], Node], args: Optional[list] = None, threads: int = 4) -> int:
    """
    Build the node, spin it until SIGINT/SIGTERM, destroy it; return a process exit code.

    threads = 1 spins a SingleThreadedExecutor: right for nodes whose callbacks never wait on
    others, since rclpy's MultiThreadedExecutor busy-loops while its pool is saturated.
    """
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = factory()
        executor = SingleThreadedExecutor() if threads <= 1 else \
            MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigurationError, ParameterError) as exc:
        name = node.get_name() if node is not None else 'node'
        print(f'[{name}] cannot start: {exc}', file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
