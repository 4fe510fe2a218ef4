"""Await rclpy futures in async callbacks with a deadline, never blocking an executor thread."""

from typing import Any, Callable, Optional, Tuple

from rclpy.callback_groups import CallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future


async def wait_for(node: Node, future: Future, timeout: float,
                   group: Optional[CallbackGroup] = None) -> Tuple[bool, Any]:
    """
    Await `future` for at most `timeout` seconds.

    Return (True, result) when it finished, (False, None) when the deadline passed (the future is
    then cancelled, which resumes the awaiting coroutine).
    """
    if future.done():
        return True, future.result()

    def expire():
        if not future.done():
            future.cancel()

    timer = node.create_timer(timeout, expire, callback_group=group or ReentrantCallbackGroup())
    try:
        result = await future
    finally:
        timer.cancel()
        node.destroy_timer(timer)
    if future.cancelled():
        return False, None
    return True, result


async def sleep(node: Node, seconds: float, group: Optional[CallbackGroup] = None) -> None:
    """Yield to the executor for `seconds` (a one-shot timer completes a future)."""
    done = Future()
    await wait_for(node, done, seconds, group)


async def wait_until(node: Node, ready: Callable[[], bool], timeout: float,
                     group: Optional[CallbackGroup] = None, period: float = 0.1) -> bool:
    """
    Poll `ready()` every `period` seconds for at most `timeout` seconds, yielding in between.

    Used for "is the peer's service or action server discovered yet": discovery over DDS takes a
    variable time after a process starts, so one check (or one check after a fixed pause) is racy.
    """
    clock = node.get_clock()
    deadline = clock.now().nanoseconds * 1e-9 + max(0.0, timeout)
    while not ready():
        if clock.now().nanoseconds * 1e-9 >= deadline:
            return False
        await sleep(node, period, group)
    return True
