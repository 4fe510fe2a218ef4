"""
A MultiThreadedExecutor that hands each ready callback to its thread pool once.

rclpy 9 (Kilted, the PyPI wheels these nodes run on) yields, at every spin, each task that has
not started executing yet, including those it already handed to its thread pool and that wait
there for a worker. `MultiThreadedExecutor` submits them again, and the spin returns at once
instead of waiting while such a task exists: the spin thread loops at full speed, holding the
GIL, and the pool's workers, which need the GIL to start the tasks, start them late. Measured
here (2 cores): a perception node waiting for a camera frame in its segment service spun ~1000
times a second per camera topic (10 Hz each), took a whole core, and took its frames so late
that the wait ran out ("nothing stamped at or after not_before"); the hand driver's control
loop, in the process of a test whose executor did this, stalled for seconds. rclpy fixed the
resubmission upstream in 10.0.4 (ros2/rclpy#1547, Rolling); Kilted's wheels do not have it.

`PoolExecutor` keeps the tasks it handed to the pool until a worker starts them. A task yielded
again while queued is not submitted again: the spin thread waits (without the GIL) until a
worker has started it, or `requeue_wait` seconds when every worker is busy, then goes on. Every
other behaviour is MultiThreadedExecutor's: the same pool, the same callback groups, an
exception of a callback raised from spin_once as before.
"""

import threading
from typing import Callable, Optional, Set

from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)


class PoolExecutor(MultiThreadedExecutor):
    """MultiThreadedExecutor without the resubmission busy loop (see the module docstring)."""

    def __init__(self, num_threads: Optional[int] = None, *, context=None,
                 requeue_wait: float = 0.05):
        super().__init__(num_threads, context=context)
        self.requeue_wait = requeue_wait
        self._queued: Set[object] = set()  # tasks in the pool that no worker has started
        self._started = threading.Condition()
        self.submitted = 0  # tasks handed to the pool (for tests and benchmarks)
        self.requeued = 0  # tasks yielded again while queued, and not submitted again

    def _start(self, task) -> None:
        with self._started:
            self._queued.discard(task)
            self._started.notify_all()
        task()

    def _spin_once_impl(self, timeout_sec=None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            task, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException,
                ConditionReachedException):
            return
        with self._started:
            if task in self._queued:
                self.requeued += 1
                self._started.wait_for(lambda: task not in self._queued,
                                       timeout=self.requeue_wait)
                return
            self._queued.add(task)
        self.submitted += 1
        try:
            self._executor.submit(self._start, task)
        except RuntimeError:  # the pool is shut down (executor.shutdown() from another thread)
            with self._started:
                self._queued.discard(task)
            return
        self._futures.append(task)
        for done in [f for f in self._futures if f.done()]:
            self._futures.remove(done)
            done.result()  # a callback's exception is raised here, as rclpy's executor does
