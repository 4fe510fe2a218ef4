"""
The steps of one episode as calls to the rest of the graph.

Perception, affordance, arm, hand, reward (sim, operator or embedding: all in `reward`), reset
(hand and arm, then the scene: sim/reset or the operator's reset_done): used by the episode node
for both `run_episode` and `fine_tune`; every call has a deadline, every failure becomes an
EpisodeFailure with a RunEpisode result code.

Two clocks: the node's clock (sim time in the sim profile) stamps the scene and the motion's end
(frames are stamped on it) and times the scene's settling; deadlines that guard against a peer
that died or hangs (service_timeout, arm_timeout, operator and reset timeouts) are wall time.
"""

from dataclasses import dataclass, fields
import time
from typing import Callable, Dict, Optional, Sequence

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import Pose
import numpy as np
from rclpy.action import ActionClient
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from std_srvs.srv import Trigger

from deft_cem.episode import ARM_STAGE_PHASE, Demonstration, waypoint_turn
from deft_cem.episode_goals import reward_error
from deft_cem.grasp_params import ParameterSpace
from deft_cem.rewards import OperatorRewardBox, ResetGate
from deft_common.image_codec import LatestFrame
from deft_common.ros_async import (
    ServerWatch,
    send_goal_served,
    settled,
    sleep,
    sleep_sim,
    wait_for,
    wait_served,
    wait_until,
)
from deft_interfaces.action import ExecuteGrasp, HandGrasp, RunEpisode
from deft_interfaces.srv import GetTaskReward, PredictGrasp, ResetSim, Segment

R = RunEpisode.Result
Phase = Callable[[str, str], None]
# (run_id or None for "nothing waits", episode, task): the latched announcements
Announce = Callable[[Optional[str], int, str], None]
ARM_GONE = ('the arm node went away during arm/execute_grasp (its process ended; see its log): '
            'the arm stopped wherever it was, check the scene')
HAND_GONE = 'the hand driver went away while opening the hand (its process ended; see its log)'


class EpisodeFailure(Exception):
    """An episode step failed; carries the RunEpisode result code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class EpisodeCanceled(Exception):
    """The goal was cancelled while the episode ran."""


@dataclass
class StepSettings:
    """Timeouts and motion settings of the steps (node parameters)."""

    service_timeout: float
    arm_timeout: float
    hand_timeout: float
    operator_timeout: float
    approach_distance: float
    scene_reset: str = 'sim'  # sim | operator | none
    settle_time: float = 0.0  # s between the end of the motion and the sim reward
    reset_timeout: float = 300.0  # s the operator may take to reset the scene (reset_done)
    final_image_timeout: float = 5.0  # s to wait for a frame after the motion (embedding)
    hand_open_duration: float = 0.0  # s the hand takes to open (0: the driver's default)
    max_unreachable: int = 5  # fine_tune: refused xi + eps in a row that stop the run

    @classmethod
    def from_params(cls, params) -> 'StepSettings':
        """Return the settings from the node's parameters of the same names."""
        return cls(**{f.name: getattr(params, f.name) for f in fields(cls)})


@dataclass
class OperatorLink:
    """The operator's side: the reward box and reset gate, and their latched announcements."""

    rewards: OperatorRewardBox
    announce_reward: Announce
    resets: Optional[ResetGate] = None
    announce_reset: Optional[Announce] = None


class EpisodeSteps:
    """Clients of the graph, and one coroutine per episode step."""

    def __init__(self, node: Node, group: CallbackGroup, space: ParameterSpace,
                 tau: Demonstration, settings: StepSettings, operator: OperatorLink,
                 demonstrations: Optional[Dict[str, Demonstration]] = None,
                 embedding=None, camera: Optional[LatestFrame] = None):
        self.node, self.group, self.space, self.tau = node, group, space, tau
        self.task_success: Optional[bool] = None  # of the last reward (sim only)
        self.demonstrations = demonstrations or {}
        self.s, self.operator = settings, operator
        self.embedding, self.camera = embedding, camera  # embedding reward (None: off)
        self.segment = node.create_client(Segment, 'perception/segment', callback_group=group)
        self.predict = node.create_client(PredictGrasp, 'affordance/predict',
                                          callback_group=group)
        self.arm_home = node.create_client(Trigger, 'arm/home', callback_group=group)
        self.sim_reset = node.create_client(ResetSim, 'sim/reset', callback_group=group)
        self.sim_reward = node.create_client(GetTaskReward, 'sim/reward', callback_group=group)
        self.arm = ActionClient(node, ExecuteGrasp, 'arm/execute_grasp', callback_group=group)
        self.hand = ActionClient(node, HandGrasp, 'hand/grasp', callback_group=group)
        # ns on the node's clock the scene was last placed at by sim/reset (frames stamped at or
        # after it show it); None once the robot moved since (or no reset yet)
        self.placed_ns: Optional[int] = None

    def scene_ns(self) -> int:
        """
        Return the time (ns, node clock) from which camera frames show the scene as it is now.

        The stamp of the last sim/reset when the robot has not moved since (the sim renders the
        placed scene at that stamp), else now.
        """
        return self.now_ns() if self.placed_ns is None else self.placed_ns

    async def call(self, client, request, code: int):
        """Call a service with the service deadline; EpisodeFailure if absent or silent."""
        name = client.srv_name
        if not await wait_until(self.node, client.service_is_ready, self.s.service_timeout,
                                self.group):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'service {name} is not available')
        future = client.call_async(request)
        deadline = time.monotonic() + self.s.service_timeout
        while not future.done():
            if not client.service_is_ready():  # its server left the graph (a crash)
                client.remove_pending_request(future)
                raise EpisodeFailure(R.SERVER_GONE, f'the node serving {name} went away during '
                                     'the call (its process ended; see its log)')
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise EpisodeFailure(code, f'{name} did not answer within '
                                     f'{self.s.service_timeout} s (is its node running?)')
            await settled(self.node, future, 0.05, self.group)
        return future.result()

    def now_ns(self) -> int:
        """Return the node's clock, ns (the clock camera frames are stamped with)."""
        return self.node.get_clock().now().nanoseconds

    async def fresh_frames(self, frames: Sequence[LatestFrame], after: int) -> bool:
        """Wait up to final_image_timeout until each of `frames` is stamped at or after `after`."""
        return await wait_until(self.node, lambda: all(f.stamp_ns() >= after for f in frames),
                                self.s.final_image_timeout, self.group, period=0.01)

    async def perceive(self, prompt: str, phase: Phase, not_before: int = 0) -> None:
        """
        Segment the object (fails early when it is not visible); waits for a first image.

        not_before (ns, node clock): segment only a frame stamped at or after it (the scene as
        reset, not a frame buffered before); 0: the newest frame.
        """
        phase('perceive', f'segmenting {prompt or "the salient object"}')
        deadline = time.monotonic() + self.s.service_timeout
        request = Segment.Request(prompt=prompt, not_before=Time(nanoseconds=not_before).to_msg())
        while True:
            response = await self.call(self.segment, request, R.SERVICE_UNAVAILABLE)
            if response.success:
                return
            if response.error_code != Segment.Response.NO_IMAGE or time.monotonic() > deadline:
                raise EpisodeFailure(R.PERCEPTION_FAILED, f'perception: {response.error_msg}')
            phase('perceive', f'waiting for the camera: {response.error_msg}')
            await sleep(self.node, 0.25, self.group)

    async def predict_prior(self, task: str, prompt: str, phase: Phase,
                            method: str = 'affordance', seed: Optional[int] = None,
                            not_before: int = 0):
        """
        Ask the affordance node for the grasp prior; return (prior msg, xi).

        method 'heuristic' asks for the "real-world only" baseline prior; its random wrist yaw
        is drawn from `seed`, so one run keeps one prior. not_before: as for perceive.
        """
        phase('predict', f'{method} grasp prior for "{task}"')
        response = await self.call(
            self.predict, PredictGrasp.Request(task=task, object_prompt=prompt, method=method,
                                               seed=-1 if seed is None else int(seed),
                                               not_before=Time(nanoseconds=not_before).to_msg()),
            R.SERVICE_UNAVAILABLE)
        if not response.success:
            raise EpisodeFailure(R.PERCEPTION_FAILED, f'affordance: {response.error_msg}')
        p = response.prior
        try:
            xi = self.space.xi(
                [p.contact_point.x, p.contact_point.y, p.contact_point.z],
                [p.wrist_orientation.x, p.wrist_orientation.y, p.wrist_orientation.z,
                 p.wrist_orientation.w],
                p.hand_joint_names, p.hand_joint_positions)
        except ValueError as exc:
            raise EpisodeFailure(R.PERCEPTION_FAILED, f'unusable grasp prior: {exc}') from exc
        return p, xi

    def demonstration(self, task: str) -> Demonstration:
        """Return the demonstrated tau of a task text (the default tau for unknown tasks)."""
        return self.demonstrations.get(task.strip().lower(), self.tau)

    def grasp_goal(self, frame_id: str, xi, eps, tau: Optional[Demonstration] = None
                   ) -> ExecuteGrasp.Goal:
        """Build the arm goal that executes xi + eps, followed by tau (default: self.tau)."""
        command = self.space.command(xi, eps)
        if command.clipped:
            self.node.get_logger().warning('residual clipped to its bounds (executed at the '
                                           f'bound): {", ".join(command.clipped)}')
        goal = ExecuteGrasp.Goal(approach_distance=self.s.approach_distance)
        goal.contact_point.header.frame_id = frame_id
        point = goal.contact_point.point
        point.x, point.y, point.z = (float(v) for v in command.contact_point)
        q = goal.wrist_orientation
        q.x, q.y, q.z, q.w = (float(v) for v in command.wrist_orientation)
        goal.hand_joint_names = command.hand_joint_names
        goal.hand_joint_positions = command.hand_joint_positions.tolist()
        for offset, turn in (tau or self.tau).scaled(command.tau_scale):
            wp = Pose()
            wp.position.x, wp.position.y, wp.position.z = (float(v) for v in offset)
            o = wp.orientation
            o.x, o.y, o.z, o.w = (float(v) for v in waypoint_turn(command.wrist_orientation,
                                                                   turn))
            goal.post_grasp_waypoints.append(wp)
        return goal

    async def execute_grasp(self, goal_handle, frame_id: str, xi, eps, phase: Phase,
                            task: str = '') -> int:
        """
        Run arm/execute_grasp with the task's tau, mirroring its stages; cancel on cancel.

        Returns when the motion ended (ns, node clock): the arm's motion_end, or now when the arm
        gives none. Frames stamped from then on show the scene the motion left.
        """
        phase('approach', 'sending the grasp to the arm')
        self.placed_ns = None
        if not await wait_until(self.node, self.arm.server_is_ready, self.s.service_timeout,
                                self.group):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE,
                                 'action arm/execute_grasp is not available')
        last = ['approach']

        def on_feedback(msg):
            p = ARM_STAGE_PHASE.get(msg.feedback.stage, 'approach')
            if p != last[0]:
                last[0] = p
                phase(p, f'arm stage {msg.feedback.stage}')

        goal = self.grasp_goal(frame_id, xi, eps, self.demonstration(task))
        # watched from before the goal: the arm may die before its goal response reaches us
        watch = ServerWatch.action(self.node, 'arm/execute_grasp')
        ended, handle = await send_goal_served(self.node, self.arm, goal, watch,
                                               self.s.service_timeout, self.group, on_feedback)
        if ended != 'done':
            raise EpisodeFailure(R.SERVER_GONE, ARM_GONE if ended == 'gone' else
                                 'arm/execute_grasp did not answer the goal within '
                                 f'{self.s.service_timeout} s (is the arm node running?)')
        if not handle.accepted:
            raise EpisodeFailure(R.ARM_FAILED, 'arm/execute_grasp rejected the grasp goal '
                                 '(see the arm node log)')
        result = handle.get_result_async()
        ended = await wait_served(self.node, result, watch, self.s.arm_timeout, self.group,
                                  stop=lambda: goal_handle.is_cancel_requested)
        if ended == 'gone':
            raise EpisodeFailure(R.SERVER_GONE, ARM_GONE)
        if ended != 'done':
            await self.cancel_arm(handle, result)
            if goal_handle.is_cancel_requested:
                raise EpisodeCanceled()
            raise EpisodeFailure(
                R.ARM_FAILED, f'arm/execute_grasp took longer than {self.s.arm_timeout} s')
        wrapped = result.result()
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            arm = wrapped.result
            code = {ExecuteGrasp.Result.HAND_FAILED: R.HAND_FAILED,
                    ExecuteGrasp.Result.UNREACHABLE: R.UNREACHABLE}.get(arm.error_code,
                                                                         R.ARM_FAILED)
            raise EpisodeFailure(code, f'arm: {arm.message} (stage {arm.final_stage})')
        now = self.now_ns()
        end = Time.from_msg(wrapped.result.motion_end).nanoseconds
        return min(end, now) if end > 0 else now

    async def cancel_arm(self, handle, result) -> None:
        """Cancel an arm goal and give it service_timeout (not a whole arm_timeout) to stop."""
        await wait_for(self.node, handle.cancel_goal_async(), self.s.service_timeout, self.group)
        if not result.done():
            await wait_for(self.node, result, self.s.service_timeout, self.group)

    async def countdown(self, goal_handle, timeout: float, ready: Callable[[], bool],
                        phase: Phase, name: str, detail: Callable[[int], str]) -> bool:
        """Wait until ready() with feedback every second; False at the deadline, cancel raises.

        The deadline is wall time: a person acts (or a node answers) in it.
        """
        deadline = time.monotonic() + timeout
        shown = None
        while not ready():
            if goal_handle.is_cancel_requested:
                raise EpisodeCanceled()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if shown != int(left):
                shown = int(left)
                phase(name, detail(shown))
            await sleep(self.node, 0.2, self.group)
        return True

    async def reward(self, goal_handle, source: str, run_id: str, episode: int, task: str,
                     phase: Phase) -> float:
        """Collect the reward: from the simulated world, the embedding or the operator."""
        if goal_handle.is_cancel_requested:
            raise EpisodeCanceled()
        self.task_success = None
        if source == 'sim':
            return await self.sim_task_reward(phase)
        if source == 'embedding':
            return await self.embedding_reward(phase)
        if source != 'operator':
            raise EpisodeFailure(R.BAD_GOAL, f'reward_source {source!r} is not one of '
                                 'operator, embedding, sim')
        return await self.operator_reward(goal_handle, run_id, episode, task, phase)

    async def sim_task_reward(self, phase: Phase) -> float:
        """Ask the simulated world for its task-success reward (after settle_time)."""
        phase('reward', 'asking the simulated world')
        if self.s.settle_time > 0:  # the scene (and its last robot state) settles first
            if not await sleep_sim(self.node, self.s.settle_time, self.s.service_timeout,
                                   self.group):
                raise EpisodeFailure(R.SERVICE_UNAVAILABLE, 'the clock did not advance by '
                                     f'settle_time {self.s.settle_time} s within '
                                     f'{self.s.service_timeout} s (on sim time: is the sim node '
                                     'publishing /clock?)')
        response = await self.call(self.sim_reward, GetTaskReward.Request(),
                                   R.SERVICE_UNAVAILABLE)
        if not response.success:
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'sim/reward: {response.message}')
        self.task_success = bool(response.task_success)
        phase('reward', f'sim reward {response.reward:.3f}, task '
              f'{"done" if response.task_success else "not done"}')
        return float(response.reward)

    async def embedding_reward(self, phase: Phase) -> float:
        """Score the first frame after the motion against the goal image (embedding distance)."""
        unusable = reward_error('embedding', self.embedding is not None
                                and self.embedding.has_goal and self.camera is not None)
        if unusable:  # goals are validated before they run: this is the last guard
            raise EpisodeFailure(R.BAD_GOAL, unusable)
        phase('reward', 'embedding distance of the final image to the goal image')
        if not await self.fresh_frames([self.camera], self.now_ns() + 1):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, 'no camera frame after the motion '
                                 f'within {self.s.final_image_timeout} s '
                                 '(camera/color/image_raw)')
        try:
            score = self.embedding.score(self.camera.rgb())
        except ValueError as exc:
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE,
                                 f'embedding reward: unusable camera frame: {exc}') from exc
        self.node.get_logger().info(f'embedding distance {float(score.distance):.3f} -> reward '
                                    f'{float(score.reward):.3f}')
        if not np.isfinite(score.reward):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, 'embedding reward is not finite')
        return float(score.reward)

    async def operator_reward(self, goal_handle, run_id: str, episode: int, task: str,
                              phase: Phase) -> float:
        """Announce the episode on reward_request and wait for submit_reward."""
        op = self.operator
        op.rewards.expect(run_id, episode)
        op.announce_reward(run_id, episode, task)
        try:
            got = await self.countdown(
                goal_handle, self.s.operator_timeout, lambda: op.rewards.poll() is not None,
                phase, 'reward', lambda left: f'waiting for the operator: submit_reward run_id '
                f'{run_id!r} episode {episode}, {left} s left')
            verdict = op.rewards.poll()
        finally:
            op.rewards.close()
            op.announce_reward(None, episode, task)  # nothing waits any more
        if not got:
            raise EpisodeFailure(R.REWARD_TIMEOUT, 'no operator reward within '
                                 f'{self.s.operator_timeout:.0f} s (call submit_reward)')
        if verdict.discard:
            raise EpisodeFailure(R.REWARD_DISCARDED, 'the operator discarded this episode')
        return verdict.reward

    async def open_hand(self) -> None:
        """Open the hand (hand/grasp named pose 'open')."""
        if not await wait_until(self.node, self.hand.server_is_ready, self.s.service_timeout,
                                self.group):
            raise EpisodeFailure(R.RESET_FAILED, 'action hand/grasp is not available')
        self.placed_ns = None
        watch = ServerWatch.action(self.node, 'hand/grasp')
        goal = HandGrasp.Goal(named_pose='open', duration=float(self.s.hand_open_duration))
        ended, handle = await send_goal_served(self.node, self.hand, goal, watch,
                                               self.s.service_timeout, self.group)
        if ended != 'done':
            raise EpisodeFailure(R.SERVER_GONE, HAND_GONE if ended == 'gone' else
                                 'hand/grasp did not answer the goal to open the hand within '
                                 f'{self.s.service_timeout} s (is the hand driver running?)')
        if not handle.accepted:
            raise EpisodeFailure(R.RESET_FAILED, 'hand/grasp refused to open the hand')
        result = handle.get_result_async()
        ended = await wait_served(self.node, result, watch, self.s.hand_timeout, self.group)
        if ended == 'gone':
            raise EpisodeFailure(R.SERVER_GONE, HAND_GONE)
        if ended == 'timeout':
            raise EpisodeFailure(R.RESET_FAILED, 'the hand did not open within '
                                 f'{self.s.hand_timeout} s')
        if result.result().status != GoalStatus.STATUS_SUCCEEDED:
            raise EpisodeFailure(R.RESET_FAILED, 'the hand did not open')

    async def home(self, phase: Phase) -> None:
        """Open the hand and send the arm home (the end of every episode, and after failures)."""
        phase('reset', 'opening the hand, arm home')
        await self.open_hand()
        home = await self.call(self.arm_home, Trigger.Request(), R.RESET_FAILED)
        if not home.success:
            raise EpisodeFailure(R.RESET_FAILED, f'arm/home: {home.message}')

    async def reset_sim_scene(self, seed: Optional[int], phase: Phase) -> None:
        """Place the simulated scene again (scene_reset sim; nothing otherwise)."""
        if self.s.scene_reset != 'sim':
            return
        phase('reset', 'placing the simulated scene')
        response = await self.call(self.sim_reset, ResetSim.Request(
            seed=-1 if seed is None else seed), R.RESET_FAILED)
        if not response.success:
            raise EpisodeFailure(R.RESET_FAILED, f'sim/reset: {response.message}')
        self.placed_ns = Time.from_msg(response.stamp).nanoseconds or None

    async def operator_reset(self, goal_handle, run_id: str, episode: int, task: str,
                             phase: Phase) -> None:
        """scene_reset operator: announce on reset_request, wait for reset_done (timeout)."""
        op = self.operator
        if self.s.scene_reset != 'operator' or op.resets is None:
            return
        op.resets.expect(run_id, episode)
        op.announce_reset(run_id, episode, task)
        try:
            done = await self.countdown(
                goal_handle, self.s.reset_timeout, op.resets.done, phase, 'reset',
                lambda left: 'waiting for the operator to reset the scene: call reset_done '
                f'({left} s left)')
        finally:
            op.resets.close()
            op.announce_reset(None, episode, task)
        if not done:
            raise EpisodeFailure(R.RESET_FAILED, 'the operator did not confirm the scene reset '
                                 f'within {self.s.reset_timeout:.0f} s (put the scene back, '
                                 'then call reset_done, e.g. from deft_score)')

    async def reset_scene(self, goal_handle, seed: Optional[int], run_id: str, episode: int,
                          task: str, phase: Phase) -> None:
        """Put the scene back after a recorded episode: sim/reset, the operator, or nothing."""
        await self.reset_sim_scene(seed, phase)
        await self.operator_reset(goal_handle, run_id, episode, task, phase)

    async def reset(self, seed: Optional[int], phase: Phase) -> None:
        """Open the hand, arm home, and place the simulated scene (never waits for a person)."""
        await self.home(phase)
        await self.reset_sim_scene(seed, phase)

    async def safe_reset(self, seed: Optional[int], phase: Phase) -> None:
        """Reset after a failure or cancel; log (never raise) if that fails too."""
        try:
            await self.reset(seed, phase)
        except EpisodeFailure as exc:
            self.node.get_logger().error(f'reset after a failed episode failed too: {exc}')
        except Exception as exc:  # the safety net must not itself raise
            self.node.get_logger().error(f'reset after a failed episode failed too: '
                                         f'{type(exc).__name__}: {exc}')
