"""A small client of the episode node: send run_episode, collect feedback, wait with deadlines."""

from dataclasses import dataclass, field
import sys
import threading
import time
from typing import Callable, List, Optional

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.srv import ResetSim

STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled'}


@dataclass
class EpisodeOutcome:
    """What came back from one run_episode goal."""

    accepted: bool
    status: int = GoalStatus.STATUS_UNKNOWN
    result: Optional[RunEpisode.Result] = None
    phases: List[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C while waiting: the goal was cancelled (result if it came)

    @property
    def status_name(self) -> str:
        """Return 'succeeded', 'aborted', 'canceled' or 'unknown'."""
        return STATUS_NAMES.get(self.status, 'unknown')


class EpisodeClient:
    """Owns a node spinning in a background thread; safe to call from plain (test) code."""

    def __init__(self, namespace: str = '/deft', name: str = 'episode_client',
                 cancel_timeout: float = 60.0):
        self.cancel_timeout = cancel_timeout  # s to wait for a goal's result after a Ctrl-C
        self.node = Node(name, namespace=namespace)
        self.action = ActionClient(self.node, RunEpisode, 'run_episode')
        # kept for the node's life: destroying an action client while the executor waits on it
        # kills the executor thread
        self.tune = ActionClient(self.node, FineTune, 'fine_tune')
        self.sim_reset = self.node.create_client(ResetSim, 'sim/reset')
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def wait_for_server(self, timeout: float) -> bool:
        """Wait until the run_episode action server is discovered."""
        return self.action.wait_for_server(timeout_sec=timeout)

    def wait_for_camera(self, timeout: float) -> bool:
        """Wait until a camera_info message arrives (the camera, or the simulated one, is up)."""
        seen = threading.Event()
        sub = self.node.create_subscription(CameraInfo, 'camera/color/camera_info',
                                            lambda _: seen.set(), qos_profile_sensor_data)
        try:
            return seen.wait(timeout)
        finally:
            self.node.destroy_subscription(sub)

    def reset_sim(self, seed: int, split: str, timeout: float) -> ResetSim.Response:
        """Place the simulated scene at configuration (seed, split); TimeoutError if no answer."""
        if not self.sim_reset.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'sim/reset did not appear within {timeout} s')
        future = self.sim_reset.call_async(ResetSim.Request(seed=int(seed), split=split))
        return self._wait(future, timeout, 'sim/reset')

    def run(self, goal: RunEpisode.Goal, timeout: float,
            on_feedback: Optional[Callable[[RunEpisode.Feedback], None]] = None,
            cancel_on_phase: str = '') -> EpisodeOutcome:
        """Send a goal and wait for its result; optionally cancel when a phase is first seen."""
        return self._run(self.action, 'run_episode', goal, timeout, on_feedback,
                         cancel_on_phase)

    def fine_tune(self, goal: FineTune.Goal, timeout: float,
                  on_feedback: Optional[Callable[[FineTune.Feedback], None]] = None,
                  cancel_on_phase: str = '') -> EpisodeOutcome:
        """Send a fine_tune goal and wait for its result (the whole run: `timeout` s)."""
        return self._run(self.tune, 'fine_tune', goal, timeout, on_feedback, cancel_on_phase)

    def _run(self, action, name, goal, timeout, on_feedback, cancel_on_phase) -> EpisodeOutcome:
        outcome = EpisodeOutcome(accepted=False)
        handle_box = {}
        early = []  # feedback that came before the goal response: kept until it is known
        lock = threading.Lock()

        def take(msg):
            fb = msg.feedback
            if not outcome.phases or outcome.phases[-1] != fb.phase:
                outcome.phases.append(fb.phase)
                if cancel_on_phase and fb.phase == cancel_on_phase:
                    handle_box['handle'].cancel_goal_async()
            if on_feedback:
                on_feedback(fb)

        def feedback(msg):
            # only the goal this call runs: a resent copy (see _send) has its own goal id
            with lock:
                handle = handle_box.get('handle')
                if handle is None:
                    early.append(msg)
                elif bytes(msg.goal_id.uuid) == bytes(handle.goal_id.uuid):
                    take(msg)

        handle = self._send(action, name, goal, feedback, timeout)
        if not handle.accepted:
            return outcome
        with lock:
            handle_box['handle'] = handle
            for msg in early:
                if bytes(msg.goal_id.uuid) == bytes(handle.goal_id.uuid):
                    take(msg)
        outcome.accepted = True
        result = handle.get_result_async()
        try:
            wrapped = self._wait(result, timeout, f'{name} result')
        except KeyboardInterrupt:  # Ctrl-C: cancel the goal and wait for its (canceled) result
            outcome.interrupted = True
            wrapped = self._cancel(handle, result, name)
            if wrapped is None:
                return outcome
        outcome.status, outcome.result = wrapped.status, wrapped.result
        return outcome

    def _cancel(self, handle, result, name: str):
        """Cancel a goal and return its result; None on a second Ctrl-C or no answer in time."""
        print(f'\ninterrupted: cancelling {name} (the episode under way is stopped and the run '
              f'saved; Ctrl-C again to leave at once, up to {self.cancel_timeout:.0f} s)',
              file=sys.stderr, flush=True)
        handle.cancel_goal_async()
        try:
            return self._wait(result, self.cancel_timeout, f'{name} result after the cancel')
        except (KeyboardInterrupt, TimeoutError) as exc:
            why = 'a second Ctrl-C' if isinstance(exc, KeyboardInterrupt) else str(exc)
            print(f'left without the result ({why})', file=sys.stderr, flush=True)
            return None

    def _send(self, action, name: str, goal, feedback, timeout: float,
              resend_after: float = 5.0):
        """
        Send the goal and return its handle; resend when no goal response comes.

        Right after the server starts, this client may already see it while the server does not
        yet see this client: a request sent then is lost (volatile QoS). So the goal is sent again
        every `resend_after` seconds; should a late response accept an earlier copy too, that
        copy is cancelled at once, so one goal runs.
        """
        deadline = time.monotonic() + timeout
        if not action.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f'the {name} action server did not appear within {timeout} s '
                               '(is the episode node running, in this namespace and domain?)')
        futures = []
        while True:
            futures.append(action.send_goal_async(goal, feedback_callback=feedback))
            resend = min(deadline, time.monotonic() + resend_after)
            while time.monotonic() < resend:
                # an accepted copy wins; a rejection counts only once every copy has answered
                # (a copy refused as "busy" may mean an earlier one runs, its response lost)
                done = [f for f in futures if f.done()]
                chosen = next((f for f in done if f.result().accepted), None)
                if chosen is None and len(done) == len(futures):
                    chosen = done[0]
                if chosen is not None:
                    for other in futures:
                        if other is not chosen:
                            other.add_done_callback(_cancel_if_accepted)
                    return chosen.result()
                time.sleep(0.02)
            if time.monotonic() >= deadline:
                raise TimeoutError(f'no goal response from {name} within {timeout} s')

    @staticmethod
    def _wait(future, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f'no {what} within {timeout} s')
            time.sleep(0.02)
        return future.result()

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self._thread.join(timeout=2.0)


def _cancel_if_accepted(future) -> None:
    """Cancel a duplicate goal that a late response accepted."""
    handle = future.result()
    if handle is not None and handle.accepted:
        handle.cancel_goal_async()
