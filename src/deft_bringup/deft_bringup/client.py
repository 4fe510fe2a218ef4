"""A small client of the episode node: send run_episode, collect feedback, wait with deadlines."""

from dataclasses import dataclass, field
import threading
import time
from typing import Callable, List, Optional

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from deft_interfaces.action import RunEpisode

STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled'}


@dataclass
class EpisodeOutcome:
    """What came back from one run_episode goal."""

    accepted: bool
    status: int = GoalStatus.STATUS_UNKNOWN
    result: Optional[RunEpisode.Result] = None
    phases: List[str] = field(default_factory=list)

    @property
    def status_name(self) -> str:
        """Return 'succeeded', 'aborted', 'canceled' or 'unknown'."""
        return STATUS_NAMES.get(self.status, 'unknown')


class EpisodeClient:
    """Owns a node spinning in a background thread; safe to call from plain (test) code."""

    def __init__(self, namespace: str = '/deft', name: str = 'episode_client'):
        self.node = Node(name, namespace=namespace)
        self.action = ActionClient(self.node, RunEpisode, 'run_episode')
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

    def run(self, goal: RunEpisode.Goal, timeout: float,
            on_feedback: Optional[Callable[[RunEpisode.Feedback], None]] = None,
            cancel_on_phase: str = '') -> EpisodeOutcome:
        """Send a goal and wait for its result; optionally cancel when a phase is first seen."""
        outcome = EpisodeOutcome(accepted=False)
        handle_box = {}

        def feedback(msg):
            fb = msg.feedback
            if not outcome.phases or outcome.phases[-1] != fb.phase:
                outcome.phases.append(fb.phase)
                if cancel_on_phase and fb.phase == cancel_on_phase and 'handle' in handle_box:
                    handle_box['handle'].cancel_goal_async()
            if on_feedback:
                on_feedback(fb)

        goal_future = self.action.send_goal_async(goal, feedback_callback=feedback)
        handle = self._wait(goal_future, timeout, 'goal response')
        if not handle.accepted:
            return outcome
        handle_box['handle'] = handle
        outcome.accepted = True
        wrapped = self._wait(handle.get_result_async(), timeout, 'result')
        outcome.status, outcome.result = wrapped.status, wrapped.result
        return outcome

    @staticmethod
    def _wait(future, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f'no {what} from run_episode within {timeout} s')
            time.sleep(0.02)
        return future.result()

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self._thread.join(timeout=2.0)
