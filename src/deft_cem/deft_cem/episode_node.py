"""
The episode orchestrator node.

`run_episode` runs one episode, `fine_tune` DEFT's Algorithm 1 over N episodes, `submit_reward`
takes the operator's score, `reset_done` the operator's "the scene is back" (scene_reset
operator), `episodes` carries a record per finished episode. The node translates parameters,
goals and results; the logic is in episode_config (parameters), episode_goals (validation, runs),
episode_runner (one episode, the fine-tuning loop), episode_recording (records, I0, bags).
"""

from dataclasses import asdict
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from deft_cem.episode_config import load_episode_config
from deft_cem.episode_goals import (
    EpisodeJob,
    one_off_residual,
    open_fine_tune_run,
    run_distribution,
    run_prior,
    validate_fine_tune_goal,
    validate_run_episode_goal,
)
from deft_cem.episode_params import PARAMS  # the node's parameters (re-exported)
from deft_cem.episode_recording import EpisodeCapture, bag_metadata, store_episode_media
from deft_cem.episode_runner import EpisodeRunner, RunStopped, unexpected
from deft_cem.episode_steps import (
    EpisodeCanceled,
    EpisodeFailure,
    EpisodeSteps,
    OperatorLink,
    StepSettings,
)
from deft_cem.fine_tune import FineTuneRun
from deft_cem.report import write_report
from deft_cem.rewards import OperatorRewardBox, ResetGate, recorded_rewards
from deft_cem.run_index import list_runs
from deft_common.image_codec import LatestFrame
from deft_common.node_main import ConfigurationError, SideLane, run_node
from deft_common.ros_params import declare
from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.msg import EpisodeRecord, RunList, RunSummary
from deft_interfaces.srv import SubmitReward
from deft_policy.runtime import (
    MissingImage,
    PolicyCache,
    policy_path,
    policy_residual,
    policy_summary,
)
from deft_replay.bag_writer import EpisodeBagWriter

R, F = RunEpisode.Result, FineTune.Result
FINE_TUNE_CODES = {'BAD_GOAL': F.BAD_GOAL, 'RUN_EXISTS': F.RUN_EXISTS,
                   'RUN_NOT_FOUND': F.RUN_NOT_FOUND}
BUSY = 'an episode or run is already going (one robot, one at a time)'


class EpisodeNode(Node):
    """Runs DEFT episodes and fine-tuning runs; one at a time (one robot)."""

    def __init__(self, **kwargs):
        super().__init__('episode', **kwargs)
        self.p = p = declare(self, PARAMS)
        try:
            config = load_episode_config(p)
        except (ValueError, OSError) as exc:
            raise ConfigurationError(str(exc)) from exc
        self.config = config
        self.space, self.std0, self.embedding = config.space, config.std0, config.embedding
        if config.demonstrations_file is not None:
            self.get_logger().info(
                f'demonstrated tau for {len(config.demonstrations)} tasks from '
                f'{config.demonstrations_file}: {", ".join(sorted(config.demonstrations))}')
        self.policies = PolicyCache(self.space.names, p.policy_resnet_weights)
        self.camera, self.depth, self.camera_info = LatestFrame(), LatestFrame(), LatestFrame()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE
                         if p.image_qos == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, 'camera/color/image_raw', self.camera.keep, qos)
        self.capture = EpisodeCapture(self.space.names, p.bag_joint_rate_hz)
        self.bags = self.states = None
        if p.record_bags:
            self.bags = EpisodeBagWriter(namespace=self.get_namespace(),
                                         compress=p.bag_compression == 'zstd')
            self.create_subscription(Image, 'camera/depth/image_raw', self.depth.keep, qos)
            self.create_subscription(CameraInfo, 'camera/color/camera_info',
                                     self.camera_info.keep, qos)
            # one per hand control step (many per second on sim time): on a side lane
            self.states = SideLane(self, 'states')
            self.states.subscribe(JointState, 'hand/joint_states', self.capture.joints.offer, 10)
        ros_home = Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))
        self.run_root = Path(p.run_root or ros_home / 'deft' / 'runs').expanduser()
        group = ReentrantCallbackGroup()
        self.rewards, self.resets = OperatorRewardBox(), ResetGate()
        self.records = self.create_publisher(EpisodeRecord, 'episodes', 10)
        # What waits for the operator, latched for a `deft_score` started late.
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.reward_requests = self.create_publisher(EpisodeRecord, 'reward_request', latched)
        self.reset_requests = self.create_publisher(EpisodeRecord, 'reset_request', latched)
        self.steps = EpisodeSteps(self, group, self.space, config.tau,
                                  StepSettings.from_params(p),
                                  OperatorLink(self.rewards, self.announce_reward_request,
                                               self.resets, self.announce_reset_request),
                                  config.demonstrations, self.embedding, self.camera)
        self.runner = EpisodeRunner(self.steps, self.capture, self.camera, self.camera_info,
                                    self.depth, self.get_logger())
        self.busy = False
        self.malformed = {}  # id(goal request) -> why: accepted, then aborted with BAD_GOAL
        self.create_service(SubmitReward, 'submit_reward', self.on_submit_reward,
                            callback_group=group)
        self.create_service(Trigger, 'reset_done', self.on_reset_done, callback_group=group)
        cancel = lambda _: CancelResponse.ACCEPT  # noqa: E731
        self.run_server = ActionServer(
            self, RunEpisode, 'run_episode', execute_callback=self.run_episode,
            goal_callback=self.on_run_episode_goal, cancel_callback=cancel, callback_group=group)
        self.tune_server = ActionServer(
            self, FineTune, 'fine_tune', execute_callback=self.fine_tune,
            goal_callback=self.on_fine_tune_goal, cancel_callback=cancel, callback_group=group)
        self.resumable = self.create_publisher(RunList, 'resumable_runs', latched)
        self.announce_runs(at_start=True)
        self.get_logger().info(f'ready: {self.space.size} grasp parameters, runs in '
                               f'{self.run_root}, reward default {p.default_reward_source}, '
                               f'scene reset {p.scene_reset}')

    def destroy_node(self):
        """Stop the side lane, then the node."""
        if self.states is not None:
            self.states.close()
        return super().destroy_node()

    def announce_runs(self, at_start: bool = False) -> None:
        """Publish (latched) and, at start, log the runs that can be resumed."""
        runs, unreadable = list_runs(self.run_root)
        msg = RunList(runs=[RunSummary(**asdict(r)) for r in runs], run_root=str(self.run_root),
                      unreadable=unreadable)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.resumable.publish(msg)
        if at_start and runs:
            self.get_logger().info('runs that can be resumed (fine_tune with resume: true): '
                                   + '; '.join(r.line() for r in runs[:10]))
        for why in unreadable if at_start else ():
            self.get_logger().warning(f'run directory cannot be read: {why}')

    # --- goals: busy is a rejection, a malformed goal an abort with BAD_GOAL and why ---------
    def _accept(self, kind: str, goal, error: Optional[str]) -> GoalResponse:
        if self.busy:
            self.get_logger().warning(f'{kind} goal rejected: {BUSY}')
            return GoalResponse.REJECT
        if error:  # accepted so the sender sees why in the result; never touches the robot
            self.malformed[id(goal)] = error
            self.get_logger().warning(f'{kind} goal malformed (aborting it): {error}')
        else:
            self.busy = True
        return GoalResponse.ACCEPT

    def on_run_episode_goal(self, goal) -> GoalResponse:
        """Accept a run_episode goal unless busy; note why it is malformed, if it is."""
        return self._accept('run_episode', goal, validate_run_episode_goal(
            goal, self.p.default_reward_source, self.config.embedding_ready,
            lambda run_id: self.policy_file(run_id) is not None, self.p.policy_checkpoint))

    def on_fine_tune_goal(self, goal) -> GoalResponse:
        """Accept a fine_tune goal unless busy; the run's own settings are checked at open."""
        return self._accept('fine_tune', goal,
                            validate_fine_tune_goal(goal, self.config.embedding_ready))

    def _refuse(self, handle, result, code: int, kind: str, message: str):
        result.error_code, result.message = code, message
        handle.abort()
        self.get_logger().warning(f'{kind}: {message}')
        return result

    # --- the operator -----------------------------------------------------------------------
    def record_msg(self, fields: dict) -> EpisodeRecord:
        """Return an EpisodeRecord of these fields, stamped now."""
        return EpisodeRecord(**fields, stamp=self.get_clock().now().to_msg())

    def announce_reward_request(self, run_id: Optional[str], episode: int, task: str) -> None:
        """Announce the episode waiting for its score on reward_request (None: none waits)."""
        self.reward_requests.publish(self.record_msg(
            self.capture.reward_request(run_id, episode, task)))

    def announce_reset_request(self, run_id: Optional[str], episode: int, task: str) -> None:
        """Announce the finished episode waiting for the scene reset on reset_request."""
        self.reset_requests.publish(self.record_msg(
            self.capture.reset_request(run_id, episode, task)))

    def on_submit_reward(self, request, response):
        """Deliver the operator's score to the episode waiting for it."""
        response.accepted, response.message = self.rewards.submit(
            request.run_id, request.episode, request.reward, request.discard,
            history=lambda run_id: recorded_rewards(self.run_root, run_id))
        # rclpy ties a severity to each call site: one call per severity.
        if response.accepted:
            self.get_logger().info(f'submit_reward: {response.message}')
        else:
            self.get_logger().warning(f'submit_reward: {response.message}')
        return response

    def on_reset_done(self, request, response):
        """Take the operator's "the scene is reset" (scene_reset operator)."""
        response.success, response.message = self.resets.confirm()
        if response.success:
            self.get_logger().info(f'reset_done: {response.message}')
        else:
            self.get_logger().warning(f'reset_done: {response.message}')
        return response

    # --- one episode ------------------------------------------------------------------------
    def policy_file(self, run_id: str) -> Optional[Path]:
        """Return the checkpoint mode policy uses for a goal's run_id (None: none exists)."""
        return policy_path(self.p.policy_checkpoint, self.run_root, run_id)

    def policy_residual(self, run_id: str, xi, seed) -> np.ndarray:
        """Return eps = pi(I0, xi) for this episode; EpisodeFailure when it cannot."""
        path = self.policy_file(run_id)
        if path is None:
            raise EpisodeFailure(R.BAD_GOAL, 'the residual policy checkpoint disappeared')
        try:
            policy, fresh = self.policies.get(path)
            if fresh:
                self.get_logger().info(policy_summary(path, policy, self.p.policy_sample))
            eps = policy_residual(policy, xi, self.capture.initial_image, self.p.policy_sample,
                                  seed)
        except MissingImage as exc:
            raise EpisodeFailure(R.PERCEPTION_FAILED, str(exc)) from exc
        except ValueError as exc:
            raise EpisodeFailure(R.BAD_GOAL, str(exc)) from exc
        self.get_logger().info(f'policy residual |eps| {float(np.linalg.norm(eps)):.3f}')
        return eps

    async def run_episode(self, handle):
        """Execute one run_episode goal."""
        goal = handle.request
        result = R(reward=math.nan)
        result.record.parameter_names = self.space.names
        error = self.malformed.pop(id(goal), None)
        if error is not None:
            return self._refuse(handle, result, R.BAD_GOAL, 'run_episode', error)
        source = goal.reward_source or self.p.default_reward_source
        seed = None if goal.seed < 0 else int(goal.seed)
        rng = np.random.default_rng(seed)

        def phase(name, detail=''):
            handle.publish_feedback(RunEpisode.Feedback(phase=name, detail=detail))

        def eps_of(xi):
            if goal.mode == 'policy':
                return self.policy_residual(goal.run_id, xi, seed)
            return one_off_residual(goal.mode, self.config.initial_std(prior), rng,
                                    run_distribution(self.run_root, goal.mode, goal.run_id))

        try:
            prior, prior_seed = run_prior(self.run_root, goal.run_id)
            job = EpisodeJob(goal.task, goal.object_prompt, source, goal.run_id, -1, seed,
                             prior, prior_seed)
            xi, eps, reward = await self.runner.episode(handle, job, eps_of, phase)
            result.record = self.record_msg(
                self.capture.record(goal.run_id, -1, goal.task, xi, eps, reward, source))
            self.records.publish(result.record)
            result.reward = reward
            if self.steps.task_success is not None:
                result.task_success = R.TASK_DONE if self.steps.task_success else R.TASK_NOT_DONE
            await self.steps.reset_scene(handle, seed, goal.run_id, -1, goal.task, phase)
            result.success = True
            result.message = f'episode done: reward {reward:.3f} ({source})'
            handle.succeed()
        except EpisodeCanceled:
            result.error_code, result.message = R.CANCELED, 'cancelled; hand opened, arm home'
            handle.canceled()
        except (EpisodeFailure, ValueError) as exc:
            result.error_code, result.message = getattr(exc, 'code', R.BAD_GOAL), str(exc)
            if result.record.reward_source:
                result.message += (f' (the episode itself finished with reward '
                                   f'{result.reward:.3f} and was published on episodes)')
            handle.abort()
        except Exception as exc:
            result.error_code = R.SERVICE_UNAVAILABLE
            result.message = unexpected(self.get_logger(), 'run_episode', exc)
            handle.abort()
        finally:
            self.busy = False
        self.get_logger().info(f'run_episode: {result.message}')
        return result

    # --- fine-tuning ------------------------------------------------------------------------
    def record_episode(self, run: FineTuneRun, k: int, xi, eps, reward: float,
                       refused: str = '') -> None:
        """
        Store a finished episode of a run: I0, bag, the record (atomic), then publish it.

        refused: why the arm refused xi + eps before any motion ('' for an executed episode);
        the twin's verdict (reward source sim) is then "not done", the others have none.
        """
        s = run.settings
        task_success = self.steps.task_success
        if refused:
            task_success = False if s.reward_source == 'sim' else None
        record = self.record_msg(self.capture.record(run.store.run_id, k, s.task, xi, eps,
                                                     reward, s.reward_source))
        bag = store_episode_media(run.store.dir, k, self.capture, record, bag_metadata(s),
                                  self.bags, self.p.save_initial_images,
                                  self.get_logger().warning)
        run.record(xi, eps, reward, s.reward_source, bag_path=bag, message=refused,
                   task_success=task_success)
        self.records.publish(record)

    async def fine_tune(self, handle):
        """Execute a fine_tune goal: N episodes of Algorithm 1, each recorded before the next."""
        g, result, run = handle.request, F(best_reward=math.nan), None
        error = self.malformed.pop(id(g), None)
        if error is not None:
            return self._refuse(handle, result, F.BAD_GOAL, 'fine_tune', error)
        try:
            run, reason, error = open_fine_tune_run(  # create or resume
                self.run_root, g, self.config.initial_std(g.prior or 'affordance'),
                self.p.elites, self.p.default_reward_source,
                self.space.names, self.config.embedding_ready)
            if run is None:
                return self._refuse(handle, result, FINE_TUNE_CODES.get(reason, F.BAD_GOAL),
                                    'fine_tune', error)
            for warning in run.warnings:  # how a resumed run's optimiser was restored
                self.get_logger().warning(f'run {run.store.run_id!r}: {warning}')
            result.run_dir = str(run.store.dir)
            await self.tune(handle, run, result)
        except Exception as exc:  # never an empty result and a stuck node
            result.error_code = F.EPISODE_FAILED
            result.message = unexpected(self.get_logger(), 'fine_tune', exc)
            if handle.is_active:
                handle.abort()
        finally:
            self.busy = False
            self.announce_runs()
        if run is not None:
            result.rewards, result.best_reward = run.rewards, run.best_reward
            try:
                result.message += f'; report {write_report(run.store.dir)}'
            except Exception as exc:  # the report is a courtesy: its failure is only logged
                self.get_logger().error(f'could not write the report of {run.store.run_id}: '
                                        f'{type(exc).__name__}: {exc}')
            self.get_logger().info(f'fine_tune {run.store.run_id}: {result.message}')
        return result

    async def tune(self, handle, run: FineTuneRun, result) -> None:
        """Run the remaining episodes of a run; end the goal with exactly one of its states."""
        s = run.settings
        fb = FineTune.Feedback(episodes=s.episodes)

        def phase(name, detail=''):
            fb.episode, fb.phase = run.next_episode, name
            fb.std, fb.best_reward = run.optimizer.std.tolist(), run.best_reward
            handle.publish_feedback(fb)

        def record(k, xi, eps, reward, refused):
            self.record_episode(run, k, xi, eps, reward, refused)
            fb.last_reward = reward

        self.get_logger().info(f'fine_tune {run.store.run_id}: episodes {run.next_episode}..'
                               f'{s.episodes - 1} in {run.store.dir}')
        try:
            await self.runner.tune(handle, run, phase, record)
            result.success = True
            result.message = f'{s.episodes} episodes, best reward {run.best_reward:.3f}'
            handle.succeed()
        except EpisodeCanceled:
            result.error_code = F.CANCELED
            result.message = (f'cancelled after {run.next_episode} finished episodes (kept; '
                              'hand opened, arm home; resume with resume: true)')
            handle.canceled()
        except RunStopped as exc:
            result.error_code = F.EPISODE_FAILED
            result.message = (f'{exc}; the {run.next_episode} finished episodes are kept '
                              '(resume with resume: true)')
            handle.abort()


def main(args=None):
    """Run the episode node."""
    # Every callback is a coroutine that awaits, never blocks: one thread serves them all.
    raise SystemExit(run_node(EpisodeNode, args, threads=1, params=PARAMS))
