"""
The steps of one episode as calls to the rest of the graph.

Perception, affordance, arm, hand, reward, reset: used by the episode node for both `run_episode`
and `fine_tune`; every call has a deadline, every failure becomes an EpisodeFailure with a
RunEpisode result code.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import Pose
from rclpy.action import ActionClient
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from deft_cem.episode import ARM_STAGE_PHASE, Demonstration, waypoint_turn
from deft_cem.grasp_params import ParameterSpace
from deft_cem.rewards import OperatorRewardBox
from deft_common.ros_async import sleep, wait_for, wait_until
from deft_interfaces.action import ExecuteGrasp, HandGrasp, RunEpisode
from deft_interfaces.srv import GetTaskReward, PredictGrasp, ResetSim, Segment

R = RunEpisode.Result
Phase = Callable[[str, str], None]


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
    reset_sim: bool
    settle_time: float = 0.0  # s between the end of the motion and the sim reward


class EpisodeSteps:
    """Clients of the graph, and one coroutine per episode step."""

    def __init__(self, node: Node, group: CallbackGroup, space: ParameterSpace,
                 tau: Demonstration, settings: StepSettings, rewards: OperatorRewardBox,
                 announce: Callable[[Optional[str], int, str], None],
                 demonstrations: Optional[Dict[str, Demonstration]] = None):
        self.node, self.group, self.space, self.tau = node, group, space, tau
        self.demonstrations = demonstrations or {}
        self.s, self.rewards, self.announce = settings, rewards, announce
        self.segment = node.create_client(Segment, 'perception/segment', callback_group=group)
        self.predict = node.create_client(PredictGrasp, 'affordance/predict',
                                          callback_group=group)
        self.arm_home = node.create_client(Trigger, 'arm/home', callback_group=group)
        self.sim_reset = node.create_client(ResetSim, 'sim/reset', callback_group=group)
        self.sim_reward = node.create_client(GetTaskReward, 'sim/reward', callback_group=group)
        self.arm = ActionClient(node, ExecuteGrasp, 'arm/execute_grasp', callback_group=group)
        self.hand = ActionClient(node, HandGrasp, 'hand/grasp', callback_group=group)

    async def call(self, client, request, code: int):
        """Call a service with the service deadline; EpisodeFailure if absent or silent."""
        name = client.srv_name
        if not await wait_until(self.node, client.service_is_ready, self.s.service_timeout,
                                self.group):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'service {name} is not available')
        done, response = await wait_for(self.node, client.call_async(request),
                                        self.s.service_timeout, self.group)
        if not done:
            raise EpisodeFailure(code, f'{name} did not answer within {self.s.service_timeout} s '
                                 '(is its node running?)')
        return response

    async def perceive(self, prompt: str, phase: Phase) -> None:
        """Segment the object (fails early when it is not visible); waits for a first image."""
        phase('perceive', f'segmenting {prompt or "the salient object"}')
        clock = self.node.get_clock()
        deadline = clock.now().nanoseconds * 1e-9 + self.s.service_timeout
        while True:
            response = await self.call(self.segment, Segment.Request(prompt=prompt),
                                       R.SERVICE_UNAVAILABLE)
            if response.success:
                return
            if response.error_code != Segment.Response.NO_IMAGE or \
                    clock.now().nanoseconds * 1e-9 > deadline:
                raise EpisodeFailure(R.PERCEPTION_FAILED, f'perception: {response.error_msg}')
            phase('perceive', f'waiting for the camera: {response.error_msg}')
            await sleep(self.node, 0.25, self.group)

    async def predict_prior(self, task: str, prompt: str, phase: Phase,
                            method: str = 'affordance', seed: Optional[int] = None):
        """
        Ask the affordance node for the grasp prior; return (prior msg, xi).

        method 'heuristic' asks for the "real-world only" baseline prior; its random wrist yaw
        is drawn from `seed`, so one run keeps one prior.
        """
        phase('predict', f'{method} grasp prior for "{task}"')
        response = await self.call(
            self.predict, PredictGrasp.Request(task=task, object_prompt=prompt, method=method,
                                               seed=-1 if seed is None else int(seed)),
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
                            task: str = '') -> None:
        """Run arm/execute_grasp with the task's tau, mirroring its stages; cancel on cancel."""
        phase('approach', 'sending the grasp to the arm')
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
        ok, handle = await wait_for(
            self.node, self.arm.send_goal_async(goal, feedback_callback=on_feedback),
            self.s.service_timeout, self.group)
        if not ok or not handle.accepted:
            raise EpisodeFailure(R.ARM_FAILED, 'arm/execute_grasp rejected the grasp goal '
                                 '(see the arm node log)')
        result = handle.get_result_async()
        waited = 0.0
        while not result.done():
            if goal_handle.is_cancel_requested or waited > self.s.arm_timeout:
                await wait_for(self.node, handle.cancel_goal_async(), self.s.service_timeout,
                               self.group)
                await wait_for(self.node, result, self.s.arm_timeout, self.group)
                if goal_handle.is_cancel_requested:
                    raise EpisodeCanceled()
                raise EpisodeFailure(
                    R.ARM_FAILED, f'arm/execute_grasp took longer than {self.s.arm_timeout} s')
            await sleep(self.node, 0.05, self.group)
            waited += 0.05
        wrapped = result.result()
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            arm = wrapped.result
            code = R.HAND_FAILED if arm.error_code == ExecuteGrasp.Result.HAND_FAILED \
                else R.ARM_FAILED
            raise EpisodeFailure(code, f'arm: {arm.message} (stage {arm.final_stage})')

    async def reward(self, goal_handle, source: str, run_id: str, episode: int, task: str,
                     phase: Phase) -> float:
        """Collect the reward from the simulated world or the operator."""
        if goal_handle.is_cancel_requested:
            raise EpisodeCanceled()
        if source == 'sim':
            phase('reward', 'asking the simulated world')
            if self.s.settle_time > 0:  # the scene (and its last robot state) settles first
                await sleep(self.node, self.s.settle_time, self.group)
            response = await self.call(self.sim_reward, GetTaskReward.Request(),
                                       R.SERVICE_UNAVAILABLE)
            if not response.success:
                raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'sim/reward: {response.message}')
            return float(response.reward)
        self.rewards.expect(run_id, episode)
        self.announce(run_id, episode, task)
        try:
            clock = self.node.get_clock()
            deadline = clock.now().nanoseconds * 1e-9 + self.s.operator_timeout
            shown = None
            while (verdict := self.rewards.poll()) is None:
                if goal_handle.is_cancel_requested:
                    raise EpisodeCanceled()
                left = deadline - clock.now().nanoseconds * 1e-9
                if left <= 0:
                    raise EpisodeFailure(R.REWARD_TIMEOUT, 'no operator reward within '
                                         f'{self.s.operator_timeout:.0f} s (call submit_reward)')
                if shown != int(left):
                    shown = int(left)
                    phase('reward', f'waiting for the operator: submit_reward run_id '
                          f'{run_id!r} episode {episode}, {shown} s left')
                await sleep(self.node, 0.2, self.group)
        finally:
            self.rewards.close()
            self.announce(None, episode, task)  # nothing waits any more
        if verdict.discard:
            raise EpisodeFailure(R.REWARD_DISCARDED, 'the operator discarded this episode')
        return verdict.reward

    async def open_hand(self) -> None:
        """Open the hand (hand/grasp named pose 'open')."""
        if not await wait_until(self.node, self.hand.server_is_ready, self.s.service_timeout,
                                self.group):
            raise EpisodeFailure(R.RESET_FAILED, 'action hand/grasp is not available')
        ok, handle = await wait_for(self.node, self.hand.send_goal_async(
            HandGrasp.Goal(named_pose='open')), self.s.service_timeout, self.group)
        if not ok or not handle.accepted:
            raise EpisodeFailure(R.RESET_FAILED, 'hand/grasp refused to open the hand')
        ok, wrapped = await wait_for(self.node, handle.get_result_async(), self.s.hand_timeout,
                                     self.group)
        if not ok or wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            raise EpisodeFailure(R.RESET_FAILED, 'the hand did not open')

    async def reset(self, seed: Optional[int], phase: Phase, arm_and_hand: bool = True) -> None:
        """Open the hand, send the arm home, and reset the simulated scene (if configured)."""
        phase('reset', 'opening the hand, arm home' if arm_and_hand else 'placing the scene')
        if arm_and_hand:
            await self.open_hand()
            home = await self.call(self.arm_home, Trigger.Request(), R.RESET_FAILED)
            if not home.success:
                raise EpisodeFailure(R.RESET_FAILED, f'arm/home: {home.message}')
        if self.s.reset_sim:
            request = ResetSim.Request(seed=-1 if seed is None else seed)
            response = await self.call(self.sim_reset, request, R.RESET_FAILED)
            if not response.success:
                raise EpisodeFailure(R.RESET_FAILED, f'sim/reset: {response.message}')

    async def safe_reset(self, seed: Optional[int], phase: Phase) -> None:
        """Reset after a failure or cancel; log (never raise) if that fails too."""
        try:
            await self.reset(seed, phase)
        except EpisodeFailure as exc:
            self.node.get_logger().error(f'reset after a failed episode failed too: {exc}')
