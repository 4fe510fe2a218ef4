"""
The panel's side of the graph: action clients, the operator's services, the latched topics.

Every rclpy callback runs on the executor's thread (rqt's, or the standalone panel's); it only
emits a Qt signal, which Qt queues to the GUI thread, so no widget is touched from ROS threads.
"""

import math
import threading
from typing import Optional

from action_msgs.msg import GoalStatus
from qtpy.QtCore import QObject, Signal
from rclpy.action import ActionClient
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.msg import EpisodeRecord, RunList
from deft_interfaces.srv import SubmitReward

STATUS = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
          GoalStatus.STATUS_CANCELED: 'canceled'}


class RosLink(QObject):
    """Sends goals and operator answers for the panel; reports everything by signal."""

    # kind ('fine_tune' | 'run_episode'), feedback message
    feedback = Signal(str, object)
    # kind, status ('succeeded' | 'aborted' | 'canceled' | 'rejected' | 'unknown'), result or None
    finished = Signal(str, str, object)
    accepted = Signal(str)
    reward_request = Signal(object)   # EpisodeRecord; reward_source '' = nothing waits
    reset_request = Signal(object)    # EpisodeRecord; reward_source '' = nothing waits
    runs = Signal(object)             # RunList
    answer = Signal(str, bool, str)   # service name, accepted, message
    prior_view = Signal(object)       # sensor_msgs/Image: the last prior drawn on the camera

    def __init__(self, node, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.node = node
        self.clients = {'run_episode': ActionClient(node, RunEpisode, 'run_episode'),
                        'fine_tune': ActionClient(node, FineTune, 'fine_tune')}
        self.submit_client = node.create_client(SubmitReward, 'submit_reward')
        self.reset_client = node.create_client(Trigger, 'reset_done')
        # (rclpy inspects a callback's signature: a bound Qt signal's emit has none, hence lambdas)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscriptions = [
            node.create_subscription(EpisodeRecord, 'reward_request',
                                     lambda msg: self.reward_request.emit(msg), latched),
            node.create_subscription(EpisodeRecord, 'reset_request',
                                     lambda msg: self.reset_request.emit(msg), latched),
            node.create_subscription(RunList, 'resumable_runs',
                                     lambda msg: self.runs.emit(msg), latched),
            node.create_subscription(Image, 'affordance/prior_view',
                                     lambda msg: self.prior_view.emit(msg), latched)]
        self.lock = threading.Lock()
        self.handle = None  # the ClientGoalHandle of the goal under way

    def server_ready(self) -> bool:
        """Return True when both action servers of the episode node are discovered."""
        return all(c.server_is_ready() for c in self.clients.values())

    def send(self, kind: str, goal, resend_after: float = 5.0, copies: int = 3) -> None:
        """
        Send a run_episode or fine_tune goal; its feedback and result come by signal.

        Right after the episode node (or this panel) starts, discovery can be one-sided and a goal
        request or its response is lost; while no answer came, the goal is sent again every
        `resend_after` s, up to `copies` in all. The first accepted copy is followed; a later
        accepted one is cancelled at once, so one goal runs; a rejection counts only when every
        copy sent was answered and none accepted.
        """
        client = self.clients[kind]
        state = {'sent': 0, 'answered': 0, 'taken': None}

        def on_feedback(msg):
            with self.lock:
                taken = state['taken']
            if taken is None or bytes(msg.goal_id.uuid) == bytes(taken.goal_id.uuid):
                self.feedback.emit(kind, msg.feedback)

        def on_response(future):
            handle = future.result()
            with self.lock:
                state['answered'] += 1
                first = handle.accepted and state['taken'] is None
                if first:
                    state['taken'] = self.handle = handle
                all_refused = state['taken'] is None and state['answered'] == state['sent']
            if first:
                self.accepted.emit(kind)
                handle.get_result_async().add_done_callback(
                    lambda f: self._on_result(kind, handle, f))
            elif handle.accepted:  # a resent copy also got through: only one goal may run
                handle.cancel_goal_async()
            elif all_refused:
                self.finished.emit(kind, 'rejected', None)

        def attempt():
            with self.lock:
                if state['answered'] or state['sent'] >= copies:
                    return
                state['sent'] += 1
            client.send_goal_async(goal, feedback_callback=on_feedback).add_done_callback(
                on_response)
            timer = threading.Timer(resend_after, attempt)
            timer.daemon = True
            timer.start()

        attempt()

    def _on_result(self, kind: str, handle, future) -> None:
        with self.lock:
            if self.handle is handle:
                self.handle = None
        answer = future.result()
        self.finished.emit(kind, STATUS.get(answer.status, 'unknown'), answer.result)

    def cancel(self) -> bool:
        """Ask the episode node to cancel the goal under way; False when none is."""
        with self.lock:
            handle = self.handle
        if handle is None:
            return False
        handle.cancel_goal_async()
        return True

    def submit(self, run_id: str, episode: int, reward: float, discard: bool) -> None:
        """Call submit_reward; the answer comes on `answer`."""
        request = SubmitReward.Request(run_id=run_id, episode=episode,
                                       reward=0.0 if discard or math.isnan(reward) else reward,
                                       discard=discard)
        self._call(self.submit_client, 'submit_reward', request,
                   lambda r: (r.accepted, r.message))

    def reset_done(self) -> None:
        """Call reset_done (the scene is back); the answer comes on `answer`."""
        self._call(self.reset_client, 'reset_done', Trigger.Request(),
                   lambda r: (r.success, r.message))

    def _call(self, client, name: str, request, unpack) -> None:
        if not client.service_is_ready():
            self.answer.emit(name, False, f'{name} is not available (is the episode node up?)')
            return

        def done(future):
            try:
                ok, message = unpack(future.result())
            except Exception as exc:  # noqa: BLE001 - shown to the operator, not raised
                ok, message = False, str(exc)
            self.answer.emit(name, ok, message)
        client.call_async(request).add_done_callback(done)

    def close(self) -> None:
        """
        Cancel the goal under way, if any; the node's owner destroys the node.

        The clients are not destroyed one by one: destroying an action client while an executor
        thread waits on it kills that thread (see deft_bringup.testing.Probe).
        """
        self.cancel()
