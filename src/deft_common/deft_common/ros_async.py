"""
Await rclpy futures in async callbacks with a deadline, never blocking an executor thread.

Deadlines and polling periods here are wall-clock time (a steady clock): they protect against a
peer that died or hangs, which must be noticed even when the node runs on a simulated clock that
has stopped with the sim node. `sleep_sim` is the one wait on the node's own clock (sim time in
the sim profile): the time a simulated scene takes to settle, with a wall-clock guard.
"""

import threading
import time
from typing import Any, Callable, Optional, Tuple
import uuid

from rclpy.action.client import ClientGoalHandle
from rclpy.callback_groups import CallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock
from rclpy.clock_type import ClockType
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.task import Future
from unique_identifier_msgs.msg import UUID


class _GoalAccepted:
    """The goal response a feedback message implies (ClientGoalHandle reads .accepted, .stamp)."""

    accepted = True
    stamp = None


_ACCEPTED = _GoalAccepted()


_STEADY = Clock(clock_type=ClockType.STEADY_TIME)


async def wait_for(node: Node, future: Future, timeout: float,
                   group: Optional[CallbackGroup] = None,
                   clock: Optional[Clock] = None) -> Tuple[bool, Any]:
    """
    Await `future` for at most `timeout` seconds of wall time (of `clock`, e.g. the node's).

    Return (True, result) when it finished, (False, None) when the deadline passed (the future is
    then cancelled, which resumes the awaiting coroutine).
    """
    if future.done():
        return True, future.result()

    def expire():
        if not future.done():
            future.cancel()

    timer = node.create_timer(timeout, expire, callback_group=group or ReentrantCallbackGroup(),
                              clock=clock or _STEADY)
    try:
        result = await future
    finally:
        try:
            timer.cancel()
            node.destroy_timer(timer)
        except InvalidHandle:  # the node was destroyed under a suspended wait (shutdown)
            pass
    if future.cancelled():
        return False, None
    return True, result


async def sleep(node: Node, seconds: float, group: Optional[CallbackGroup] = None) -> None:
    """Yield to the executor for `seconds` of wall time (a one-shot timer ends the wait)."""
    done = Future()
    await wait_for(node, done, seconds, group)


async def settled(node: Node, future: Future, period: float,
                  group: Optional[CallbackGroup] = None) -> bool:
    """
    Yield until `future` is done or `period` s of wall time passed; return whether it is done.

    Unlike wait_for, the future is left alone at the deadline: a polling loop resumes as soon as
    the answer comes instead of at its next period.
    """
    if future.done():
        return True
    woken = Future()
    future.add_done_callback(lambda _: woken.done() or woken.set_result(True))
    await wait_for(node, woken, period, group)
    return future.done()


async def sleep_sim(node: Node, seconds: float, wall_timeout: float,
                    group: Optional[CallbackGroup] = None) -> bool:
    """
    Yield for `seconds` on the node's clock (sim time with use_sim_time, else wall time).

    Return False when the clock did not get there within `wall_timeout` s of wall time (on sim
    time: the sim node stopped publishing /clock).
    """
    clock = node.get_clock()
    give_up = time.monotonic() + wall_timeout
    while clock.now().nanoseconds == 0:  # sim time before the first /clock: count from its start
        if time.monotonic() >= give_up:
            return False
        await sleep(node, 0.01, group)
    end = clock.now().nanoseconds + int(seconds * 1e9)
    while clock.now().nanoseconds < end:
        wall_left = give_up - time.monotonic()
        if wall_left <= 0:
            return False
        due = Future()
        timer = node.create_timer(max(1e-6, (end - clock.now().nanoseconds) * 1e-9),
                                  lambda due=due: due.done() or due.set_result(True),
                                  callback_group=group or ReentrantCallbackGroup(), clock=clock)
        try:
            await wait_for(node, due, wall_left, group)
        finally:
            try:
                timer.cancel()
                node.destroy_timer(timer)
            except InvalidHandle:
                pass
    return True


async def wait_until(node: Node, ready: Callable[[], bool], timeout: float,
                     group: Optional[CallbackGroup] = None, period: float = 0.1) -> bool:
    """
    Poll `ready()` every `period` seconds for at most `timeout` seconds, yielding in between.

    Used for "is the peer's service or action server discovered yet": discovery over DDS takes a
    variable time after a process starts, so one check (or one check after a fixed pause) is racy.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    while not ready():
        if time.monotonic() >= deadline:
            return False
        await sleep(node, period, group)
    return True


class ServerWatch:
    """
    Notices that the server answering a goal or a request has gone away.

    An action server's status topic, or a service's response topic, has one publisher per live
    server process. The watch keeps the DDS ids (GIDs) of those publishers when a goal is sent;
    `gone()` turns true once none of them is on the graph any more: the process ended (it is
    dropped when its participant lease expires, a few seconds after a crash with the shipped DDS
    profile), even when a restarted server already took its place, which knows nothing of the
    goal. A watch that saw no publisher at all (discovery not complete) never reports gone.
    """

    def __init__(self, node: Node, topic: str):
        self.node = node
        self.topic = node.resolve_topic_name(topic)
        self.gids = self._gids()

    @classmethod
    def action(cls, node: Node, name: str) -> 'ServerWatch':
        """Watch the server of action `name` (relative names resolve in the node's namespace)."""
        return cls(node, f'{node.resolve_topic_name(name)}/_action/status')

    @classmethod
    def service(cls, node: Node, name: str) -> 'ServerWatch':
        """Watch the server of service `name`."""
        return cls(node, f'{node.resolve_service_name(name)}/_service_event')

    def _gids(self) -> frozenset:
        try:
            infos = self.node.get_publishers_info_by_topic(self.topic)
        except Exception:  # noqa: BLE001 - a node shutting down: nothing to tell
            return frozenset()
        return frozenset(bytes(info.endpoint_gid) for info in infos)

    def gone(self) -> bool:
        """Return True when every server seen at the start has left the graph."""
        return bool(self.gids) and not (self.gids & self._gids())


async def wait_served(node: Node, future: Future, watch: ServerWatch, timeout: float,
                      group: Optional[CallbackGroup] = None,
                      stop: Callable[[], bool] = lambda: False, period: float = 0.05) -> str:
    """
    Await a result `future` while its server lives: 'done', 'gone', 'timeout' or 'stopped'.

    'gone': the watched server left the graph (the future is cancelled: no answer will come);
    'timeout': `timeout` s of wall time passed; 'stopped': `stop()` turned true (a cancel, a node
    shutting down). The caller decides what each means for its goal. Resumes as soon as the
    future is done (the checks run every `period` s meanwhile).
    """
    deadline = time.monotonic() + timeout
    while not future.done():
        if stop():
            return 'stopped'
        if watch.gone():
            future.cancel()
            return 'gone'
        if time.monotonic() > deadline:
            return 'timeout'
        await settled(node, future, period, group)
    return 'done'


async def send_goal_served(node: Node, client, goal, watch: ServerWatch, timeout: float,
                           group: Optional[CallbackGroup] = None,
                           feedback_callback: Optional[Callable] = None,
                           stop: Callable[[], bool] = lambda: False) -> Tuple[str, Any]:
    """
    Send an action goal and await its goal response while the server lives.

    Return (ended, goal handle): `ended` as wait_served ('done', 'gone', 'timeout', 'stopped'),
    the handle None unless 'done'. Make `watch` before calling: a server may die before it answers.

    A server that has just started can drop its goal response (its response writer has not yet
    matched this client's reader) and still run the goal. Feedback comes only for an accepted
    goal, so the first feedback of this goal's id stands for the response: the handle is then
    made from the goal id (results and cancels are requested by id and work as usual).
    """
    goal_id = UUID(uuid=list(uuid.uuid4().bytes))
    accepted = Future()

    def on_feedback(msg):
        if not accepted.done():
            accepted.set_result(ClientGoalHandle(client, goal_id, _ACCEPTED))
        if feedback_callback is not None:
            feedback_callback(msg)

    def on_response(future):
        if accepted.done():
            return
        if future.cancelled():
            accepted.cancel()
        elif future.exception() is not None:
            accepted.set_exception(future.exception())
        else:
            accepted.set_result(future.result())

    sent = client.send_goal_async(goal, feedback_callback=on_feedback, goal_uuid=goal_id)
    sent.add_done_callback(on_response)
    ended = await wait_served(node, accepted, watch, timeout, group, stop=stop)
    if ended != 'done' and not sent.done():
        sent.cancel()  # forget the request: no answer is awaited any more
    return ended, (accepted.result() if ended == 'done' else None)


class ThreadJob:
    """
    A blocking function (file writes, compression) run on a thread of its own, awaited later.

    The coroutine that starts it goes on with other steps (awaiting peers) and joins it when it
    needs the result: the executor thread never blocks on it.
    """

    def __init__(self, fn: Callable[[], Any], name: str = 'deft_job'):
        self._done = threading.Event()
        self._result: Any = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._result = fn()
        except BaseException as exc:  # noqa: B902 - handed to whoever joins
            self._error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        """Return whether the function returned or raised."""
        return self._done.is_set()

    async def join(self, node: Node, timeout: float,
                   group: Optional[CallbackGroup] = None) -> Any:
        """
        Await the function (polled every 10 ms of wall time): its result, or its exception.

        TimeoutError when it has not finished within `timeout` s of wall time (it runs on).
        """
        if not await wait_until(node, self.done, timeout, group, period=0.01):
            raise TimeoutError(f'{self._thread.name} did not finish within {timeout} s')
        if self._error is not None:
            raise self._error
        return self._result
