"""The episode orchestrator: one DEFT episode per `run_episode` goal, operator rewards, records."""

import math
from typing import Optional

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import Pose
import numpy as np
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from deft_cem.episode import (
    ARM_STAGE_PHASE,
    MODES,
    REWARD_SOURCES,
    parse_waypoints,
    residual,
    scaled_waypoints,
)
from deft_cem.grasp_params import ParameterSpace
from deft_cem.rewards import OperatorRewardBox
from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_async import sleep, wait_for
from deft_common.ros_params import Param, declare
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.action import ExecuteGrasp, HandGrasp, RunEpisode
from deft_interfaces.msg import EpisodeRecord
from deft_interfaces.srv import GetTaskReward, PredictGrasp, ResetSim, Segment, SubmitReward

R = RunEpisode.Result
PARAMS = (
    Param('default_reward_source', 'sim', 'Reward source when a goal leaves it empty.',
          choices=('operator', 'sim')),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('contact_std', 0.02, 'Initial residual std of the contact point, m.', range=(0.0, 0.2)),
    Param('wrist_std', 0.2, 'Initial residual std of the wrist rotation, rad.', range=(0.0, 1.5)),
    Param('hand_std', 0.1, 'Initial residual std of each hand joint, rad.', range=(0.0, 1.0)),
    Param('tau_std', 0.1, 'Initial residual std of the trajectory scale.', range=(0.0, 1.0)),
    Param('post_grasp_waypoints', [0.0, 0.0, 0.06, 0.0, 0.0, 0.12],
          'Demonstrated post-grasp trajectory tau: x, y, z offsets from the grasp, m, base axes.'),
    Param('approach_distance', 0.08, 'Pre-grasp distance before the contact, m.',
          range=(0.0, 0.5)),
    Param('reset_sim', True, 'Reset the simulated scene (sim/reset) at the end of an episode.'),
    Param('operator_timeout', 600.0, 'Seconds to wait for the operator reward.',
          range=(1.0, 86400.0)),
    Param('service_timeout', 10.0, 'Seconds to wait for a service to exist and answer.',
          range=(0.1, 600.0)),
    Param('arm_timeout', 120.0, 'Seconds the whole arm/execute_grasp may take.',
          range=(1.0, 3600.0)),
    Param('hand_timeout', 15.0, 'Seconds opening the hand may take.', range=(0.5, 600.0)),
)


class EpisodeFailure(Exception):
    """An episode step failed; carries the RunEpisode result code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class EpisodeCanceled(Exception):
    """The goal was cancelled while the episode ran."""


class EpisodeNode(Node):
    """Runs DEFT episodes: perceive, predict, execute xi + eps, reward, reset; records each."""

    def __init__(self, **kwargs):
        super().__init__('episode', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            hand = load_hand_config(self.p.hand_config)
            self.space = ParameterSpace(hand.joint_names, hand.lower, hand.upper)
            self.std0 = self.space.default_std(self.p.contact_std, self.p.wrist_std,
                                               self.p.hand_std, self.p.tau_std)
            self.tau = parse_waypoints(self.p.post_grasp_waypoints)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self._group = ReentrantCallbackGroup()
        g = self._group
        self._segment = self.create_client(Segment, 'perception/segment', callback_group=g)
        self._predict = self.create_client(PredictGrasp, 'affordance/predict', callback_group=g)
        self._arm_home = self.create_client(Trigger, 'arm/home', callback_group=g)
        self._sim_reset = self.create_client(ResetSim, 'sim/reset', callback_group=g)
        self._sim_reward = self.create_client(GetTaskReward, 'sim/reward', callback_group=g)
        self._arm = ActionClient(self, ExecuteGrasp, 'arm/execute_grasp', callback_group=g)
        self._hand = ActionClient(self, HandGrasp, 'hand/grasp', callback_group=g)
        self._records = self.create_publisher(EpisodeRecord, 'episodes', 10)
        self._rewards = OperatorRewardBox()
        self._busy = False
        self.create_service(SubmitReward, 'submit_reward', self._on_submit_reward,
                            callback_group=g)
        self._server = ActionServer(
            self, RunEpisode, 'run_episode', execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=g)
        self.get_logger().info(
            f'ready: {self.space.size} grasp parameters, reward default '
            f'{self.p.default_reward_source!r}')

    # --- goals and services ------------------------------------------------------------
    def _goal_error(self, goal: RunEpisode.Goal) -> Optional[str]:
        if self._busy:
            return 'an episode is already running (one robot, one episode at a time)'
        if not goal.task.strip():
            return 'task is empty; say what to do, e.g. "pick up the cup"'
        if goal.mode not in MODES:
            return f'mode {goal.mode!r} is not one of {", ".join(MODES)}'
        if goal.mode == 'policy':
            return 'mode "policy" needs a trained residual policy; none is loaded'
        source = goal.reward_source or self.p.default_reward_source
        if source not in REWARD_SOURCES:
            return f'reward_source {source!r} is not one of {", ".join(REWARD_SOURCES)}'
        if source == 'embedding':
            return 'reward_source "embedding" needs an image encoder; none is configured'
        return None

    def _on_goal(self, goal: RunEpisode.Goal) -> GoalResponse:
        error = self._goal_error(goal)
        if error:
            self.get_logger().warning(f'run_episode goal rejected: {error}')
            return GoalResponse.REJECT
        self._busy = True
        return GoalResponse.ACCEPT

    def _on_submit_reward(self, request, response):
        response.accepted, response.message = self._rewards.submit(
            request.run_id, request.episode, request.reward, request.discard)
        log = self.get_logger().info if response.accepted else self.get_logger().warning
        log(f'submit_reward: {response.message}')
        return response

    # --- the episode -------------------------------------------------------------------
    async def _execute(self, goal_handle):
        goal = goal_handle.request
        source = goal.reward_source or self.p.default_reward_source
        seed = None if goal.seed < 0 else int(goal.seed)
        rng = np.random.default_rng(seed)
        record = EpisodeRecord(run_id=goal.run_id, episode=-1, task=goal.task,
                               parameter_names=self.space.names, reward=math.nan,
                               reward_source=source)
        self._phase_handle = goal_handle
        result = R()
        try:
            await self._perceive(goal)
            prior = await self._predict_prior(goal)
            xi = self.space.xi(
                [prior.contact_point.x, prior.contact_point.y, prior.contact_point.z],
                [prior.wrist_orientation.x, prior.wrist_orientation.y,
                 prior.wrist_orientation.z, prior.wrist_orientation.w],
                prior.hand_joint_names, prior.hand_joint_positions)
            eps = residual(goal.mode, self.std0, rng)
            record.xi, record.eps = xi.tolist(), eps.tolist()
            await self._execute_grasp(goal_handle, prior.header.frame_id, xi, eps)
            record.reward = await self._reward(goal_handle, goal, source)
            await self._reset(seed)
            result.success, result.error_code = True, R.NONE
            result.message = f'episode done: reward {record.reward:.3f} ({source})'
        except EpisodeCanceled:
            await self._safe_reset(seed)
            result.error_code = R.CANCELED
            result.message = 'episode cancelled; hand opened, arm home'
        except EpisodeFailure as exc:
            if exc.code != R.RESET_FAILED:
                await self._safe_reset(seed)
            result.error_code, result.message = exc.code, str(exc)
        except ValueError as exc:  # a prior the parameter space cannot use
            await self._safe_reset(seed)
            result.error_code = R.PERCEPTION_FAILED
            result.message = f'unusable grasp prior: {exc}'
        finally:
            self._rewards.close()
            self._busy = False
        record.stamp = self.get_clock().now().to_msg()
        result.reward, result.record = record.reward, record
        if result.success:
            self._records.publish(record)
            goal_handle.succeed()
        elif result.error_code == R.CANCELED:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        self.get_logger().info(f'run_episode: {result.message}')
        return result

    def _feedback(self, phase: str, detail: str = ''):
        self._phase_handle.publish_feedback(RunEpisode.Feedback(phase=phase, detail=detail))

    def _check_cancel(self, goal_handle):
        if goal_handle.is_cancel_requested:
            raise EpisodeCanceled()

    async def _call(self, client, request, code: int):
        name = client.srv_name
        if not client.wait_for_service(timeout_sec=0.0):
            await sleep(self, min(1.0, self.p.service_timeout), self._group)
            if not client.service_is_ready():
                raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'service {name} is not available')
        done, response = await wait_for(self, client.call_async(request),
                                        self.p.service_timeout, self._group)
        if not done:
            raise EpisodeFailure(code, f'{name} did not answer within {self.p.service_timeout} s')
        return response

    async def _perceive(self, goal):
        self._feedback('perceive', f'segmenting {goal.object_prompt or "the salient object"}')
        response = await self._call(self._segment, Segment.Request(prompt=goal.object_prompt),
                                    R.PERCEPTION_FAILED)
        if not response.success:
            raise EpisodeFailure(R.PERCEPTION_FAILED, f'perception: {response.error_msg}')

    async def _predict_prior(self, goal):
        self._feedback('predict', f'grasp prior for "{goal.task}"')
        response = await self._call(
            self._predict,
            PredictGrasp.Request(task=goal.task, object_prompt=goal.object_prompt),
            R.PERCEPTION_FAILED)
        if not response.success:
            raise EpisodeFailure(R.PERCEPTION_FAILED, f'affordance: {response.error_msg}')
        return response.prior

    async def _execute_grasp(self, goal_handle, frame_id: str, xi, eps):
        command = self.space.command(xi, eps)
        arm_goal = ExecuteGrasp.Goal(approach_distance=self.p.approach_distance)
        arm_goal.contact_point.header.frame_id = frame_id
        arm_goal.contact_point.point.x, arm_goal.contact_point.point.y, \
            arm_goal.contact_point.point.z = (float(v) for v in command.contact_point)
        q = arm_goal.wrist_orientation
        q.x, q.y, q.z, q.w = (float(v) for v in command.wrist_orientation)
        arm_goal.hand_joint_names = command.hand_joint_names
        arm_goal.hand_joint_positions = command.hand_joint_positions.tolist()
        for offset in scaled_waypoints(self.tau, command.tau_scale):
            wp = Pose()
            wp.position.x, wp.position.y, wp.position.z = (float(v) for v in offset)
            wp.orientation.w = 1.0
            arm_goal.post_grasp_waypoints.append(wp)
        self._feedback('approach', 'sending the grasp to the arm')
        if not self._arm.wait_for_server(timeout_sec=self.p.service_timeout):
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE,
                                 'action arm/execute_grasp is not available')
        last = {'phase': 'approach'}

        def on_feedback(msg):
            phase = ARM_STAGE_PHASE.get(msg.feedback.stage, 'approach')
            if phase != last['phase']:
                last['phase'] = phase
                self._feedback(phase, f'arm stage {msg.feedback.stage}')

        accepted, handle = await wait_for(
            self, self._arm.send_goal_async(arm_goal, feedback_callback=on_feedback),
            self.p.service_timeout, self._group)
        if not accepted or not handle.accepted:
            raise EpisodeFailure(R.ARM_FAILED, 'arm/execute_grasp rejected the grasp goal '
                                 '(see the arm node log)')
        result_future = handle.get_result_async()
        waited = 0.0
        while not result_future.done():
            if goal_handle.is_cancel_requested:
                await wait_for(self, handle.cancel_goal_async(), self.p.service_timeout,
                               self._group)
                await wait_for(self, result_future, self.p.arm_timeout, self._group)
                raise EpisodeCanceled()
            if waited > self.p.arm_timeout:
                await wait_for(self, handle.cancel_goal_async(), self.p.service_timeout,
                               self._group)
                raise EpisodeFailure(R.ARM_FAILED,
                                     f'arm/execute_grasp took longer than {self.p.arm_timeout} s')
            await sleep(self, 0.05, self._group)
            waited += 0.05
        wrapped = result_future.result()
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            arm = wrapped.result
            code = R.HAND_FAILED if arm.error_code == ExecuteGrasp.Result.HAND_FAILED \
                else R.ARM_FAILED
            raise EpisodeFailure(code, f'arm: {arm.message} (stage {arm.final_stage})')

    async def _reward(self, goal_handle, goal, source: str) -> float:
        self._check_cancel(goal_handle)
        if source == 'sim':
            self._feedback('reward', 'asking the simulated world')
            response = await self._call(self._sim_reward, GetTaskReward.Request(),
                                        R.SERVICE_UNAVAILABLE)
            if not response.success:
                raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'sim/reward: {response.message}')
            return float(response.reward)
        self._rewards.expect(goal.run_id, -1)
        deadline = self.get_clock().now().nanoseconds * 1e-9 + self.p.operator_timeout
        shown = None
        while True:
            verdict = self._rewards.poll()
            if verdict is not None:
                break
            self._check_cancel(goal_handle)
            left = deadline - self.get_clock().now().nanoseconds * 1e-9
            if left <= 0:
                raise EpisodeFailure(R.REWARD_TIMEOUT, 'no operator reward within '
                                     f'{self.p.operator_timeout:.0f} s (call submit_reward)')
            if shown != int(left):
                shown = int(left)
                self._feedback('reward', f'waiting for the operator reward (submit_reward, '
                               f'run_id {goal.run_id!r}, episode -1), {shown} s left')
            await sleep(self, 0.2, self._group)
        if verdict.discard:
            raise EpisodeFailure(R.REWARD_DISCARDED, 'the operator discarded this episode')
        return verdict.reward

    async def _open_hand(self):
        if not self._hand.wait_for_server(timeout_sec=self.p.service_timeout):
            raise EpisodeFailure(R.RESET_FAILED, 'action hand/grasp is not available')
        ok, handle = await wait_for(self, self._hand.send_goal_async(
            HandGrasp.Goal(named_pose='open')), self.p.service_timeout, self._group)
        if not ok or not handle.accepted:
            raise EpisodeFailure(R.RESET_FAILED, 'hand/grasp refused to open the hand')
        ok, wrapped = await wait_for(self, handle.get_result_async(), self.p.hand_timeout,
                                     self._group)
        if not ok or wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            raise EpisodeFailure(R.RESET_FAILED, 'the hand did not open')

    async def _reset(self, seed: Optional[int]):
        self._feedback('reset', 'opening the hand, arm home')
        await self._open_hand()
        home = await self._call(self._arm_home, Trigger.Request(), R.RESET_FAILED)
        if not home.success:
            raise EpisodeFailure(R.RESET_FAILED, f'arm/home: {home.message}')
        if self.p.reset_sim:
            request = ResetSim.Request(seed=-1 if seed is None else seed)
            response = await self._call(self._sim_reset, request, R.RESET_FAILED)
            if not response.success:
                raise EpisodeFailure(R.RESET_FAILED, f'sim/reset: {response.message}')

    async def _safe_reset(self, seed: Optional[int]):
        try:
            await self._reset(seed)
        except EpisodeFailure as exc:
            self.get_logger().error(f'reset after a failed episode failed too: {exc}')


def main(args=None):
    """Run the episode node."""
    raise SystemExit(run_node(EpisodeNode, args))
