"""
The episode orchestrator node.

`run_episode` runs one episode, `fine_tune` DEFT's Algorithm 1 over N episodes, `submit_reward`
takes the operator's score, `reset_done` the operator's "the scene is back" (scene_reset
operator), `episodes` carries a record per finished episode.
"""

import math
import os
from pathlib import Path
import shutil
import traceback
from typing import Optional

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger

from deft_cem.episode import load_demonstrations, parse_demonstration
from deft_cem.episode_bag import EpisodeBagWriter, Frame, episode_bag_path
from deft_cem.episode_goals import (
    EpisodeJob,
    JointDecimator,
    one_off_residual,
    reward_error,
    run_prior,
    validate_fine_tune_goal,
    validate_run_episode_goal,
)
from deft_cem.episode_params import PARAMS  # noqa: F401 (the node's parameters, re-exported)
from deft_cem.episode_steps import (
    EpisodeCanceled,
    EpisodeFailure,
    EpisodeSteps,
    OperatorLink,
    StepSettings,
)
from deft_cem.fine_tune import FineTuneError, FineTuneRequest, FineTuneRun, load_distribution
from deft_cem.grasp_params import ParameterSpace
from deft_cem.policy_runtime import MissingImage, PolicyCache, policy_path, policy_residual
from deft_cem.report import write_report
from deft_cem.rewards import OperatorRewardBox, ResetGate, recorded_rewards
from deft_common.image_codec import LatestFrame
from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_params import declare
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.msg import EpisodeRecord
from deft_interfaces.srv import SubmitReward

R, F = RunEpisode.Result, FineTune.Result
DEMONSTRATIONS = 'demonstrations.yaml'  # installed in share/deft_cem/config
FINE_TUNE_CODES = {'BAD_GOAL': F.BAD_GOAL, 'RUN_EXISTS': F.RUN_EXISTS,
                   'RUN_NOT_FOUND': F.RUN_NOT_FOUND}
BUSY = 'an episode or run is already going (one robot, one at a time)'


class EpisodeNode(Node):
    """Runs DEFT episodes and fine-tuning runs; one at a time (one robot)."""

    def __init__(self, **kwargs):
        super().__init__('episode', **kwargs)
        self.p = p = declare(self, PARAMS)
        try:
            hand = load_hand_config(p.hand_config)
            self.space = ParameterSpace(hand.joint_names, hand.lower, hand.upper,
                                        contact_offset_max=p.contact_offset_max,
                                        wrist_residual_max=p.wrist_residual_max)
            self.std0 = self.space.default_std(p.contact_std, p.wrist_std, p.hand_std, p.tau_std)
            turns = p.post_grasp_rotations if any(p.post_grasp_rotations) else []
            tau = parse_demonstration(p.post_grasp_waypoints, turns)
            demonstrations = self.load_demonstrations()
        except (ValueError, OSError) as exc:
            raise ConfigurationError(str(exc)) from exc
        self.embedding = None
        if p.embedding_weights:
            from deft_cem.embedding_reward import EmbeddingReward  # torch: only when used
            try:
                self.embedding = EmbeddingReward.from_config(
                    p.embedding_encoder, p.embedding_weights, p.embedding_goal_image or None,
                    scale=p.embedding_scale)
            except (ValueError, OSError) as exc:
                raise ConfigurationError(f'embedding reward: {exc}') from exc
        if p.default_reward_source == 'embedding' and not self.embedding_ready():
            raise ConfigurationError('default_reward_source is embedding, but embedding_weights '
                                     'and embedding_goal_image are not both set')
        self.policies = PolicyCache(self.space.names, p.policy_resnet_weights)
        self.camera, self.depth, self.camera_info = LatestFrame(), LatestFrame(), LatestFrame()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE
                         if p.image_qos == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, 'camera/color/image_raw', self.camera.keep, qos)
        self.joints = JointDecimator(p.bag_joint_rate_hz)
        self.bags = None
        if p.record_bags:
            self.bags = EpisodeBagWriter(namespace=self.get_namespace())
            self.create_subscription(Image, 'camera/depth/image_raw', self.depth.keep, qos)
            self.create_subscription(CameraInfo, 'camera/color/camera_info',
                                     self.camera_info.keep, qos)
            self.create_subscription(JointState, 'hand/joint_states', self.joints.offer, 10)
        self.frames = {}  # 'initial' / 'final' -> Frame of the episode under way
        self.prior_msg, self.initial_image, self.current = None, None, {}
        ros_home = Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))
        self.run_root = Path(p.run_root or ros_home / 'deft' / 'runs').expanduser()
        group = ReentrantCallbackGroup()
        self.rewards, self.resets = OperatorRewardBox(), ResetGate()
        self.records = self.create_publisher(EpisodeRecord, 'episodes', 10)
        # What waits for the operator, latched for a `deft_score` started late.
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.reward_requests = self.create_publisher(EpisodeRecord, 'reward_request', latched)
        self.reset_requests = self.create_publisher(EpisodeRecord, 'reset_request', latched)
        self.steps = EpisodeSteps(self, group, self.space, tau, StepSettings(
            p.service_timeout, p.arm_timeout, p.hand_timeout, p.operator_timeout,
            p.approach_distance, p.scene_reset, p.settle_time, p.reset_timeout,
            p.final_image_timeout), OperatorLink(
                self.rewards, self.announce_reward_request, self.resets,
                self.announce_reset_request), demonstrations, self.embedding, self.camera)
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
        self.get_logger().info(f'ready: {self.space.size} grasp parameters, runs in '
                               f'{self.run_root}, reward default {p.default_reward_source}, '
                               f'scene reset {p.scene_reset}')

    def load_demonstrations(self) -> dict:
        """Read the `demonstrations` file (task text -> tau); log what each task will follow."""
        path = self.p.demonstrations
        if path.strip().lower() == 'none':
            return {}
        if not path:
            from ament_index_python.packages import get_package_share_directory
            path = Path(get_package_share_directory('deft_cem')) / 'config' / DEMONSTRATIONS
        demonstrations = load_demonstrations(path)
        self.get_logger().info(f'demonstrated tau for {len(demonstrations)} tasks from {path}: '
                               f'{", ".join(sorted(demonstrations))}')
        return demonstrations

    def embedding_ready(self) -> bool:
        """Return True when the embedding reward has an encoder and a goal image."""
        return self.embedding is not None and self.embedding.has_goal

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
            goal, self.p.default_reward_source, self.embedding_ready(),
            lambda run_id: self.policy_file(run_id) is not None, self.p.policy_checkpoint))

    def on_fine_tune_goal(self, goal) -> GoalResponse:
        """Accept a fine_tune goal unless busy; the run's own settings are checked at open."""
        return self._accept('fine_tune', goal,
                            validate_fine_tune_goal(goal, self.embedding_ready()))

    def _refuse(self, handle, result, code: int, kind: str, message: str):
        result.error_code, result.message = code, message
        handle.abort()
        self.get_logger().warning(f'{kind}: {message}')
        return result

    def _unexpected(self, kind: str, exc: Exception) -> str:
        """Log a bug or an unforeseen I/O error with its traceback; return the result message."""
        self.get_logger().error(f'{kind}: unexpected {type(exc).__name__}: {exc}\n'
                                f'{"".join(traceback.format_exception(exc))}')
        return f'internal error of the episode node ({type(exc).__name__}: {exc}); see its log'

    # --- the operator -----------------------------------------------------------------------
    def _announce(self, publisher, run_id: Optional[str], episode: int, task: str,
                  reward: float, source: str) -> None:
        """Publish what waits for the operator (latched); run_id None = nothing waits."""
        stamp = self.get_clock().now().to_msg()
        if run_id is None:  # a terminal started later is not shown a finished wait
            publisher.publish(EpisodeRecord(episode=-1, reward=math.nan, reward_source='',
                                            stamp=stamp))
            return
        publisher.publish(EpisodeRecord(
            run_id=run_id, episode=episode, task=task, reward=reward, reward_source=source,
            xi=self.current.get('xi', []), eps=self.current.get('eps', []),
            parameter_names=self.space.names, stamp=stamp))

    def announce_reward_request(self, run_id: Optional[str], episode: int, task: str) -> None:
        """Announce the episode waiting for its score on reward_request."""
        self._announce(self.reward_requests, run_id, episode, task, math.nan, 'operator')

    def announce_reset_request(self, run_id: Optional[str], episode: int, task: str) -> None:
        """Announce the finished episode waiting for the scene reset on reset_request."""
        self._announce(self.reset_requests, run_id, episode, task,
                       self.current.get('reward', math.nan), self.current.get('source', ''))

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
                self.get_logger().info(
                    f'residual policy {path}: {policy.config.model!r} on '
                    f'{policy.config.feature_kind!r} features, z '
                    f'{"sampled" if self.p.policy_sample else "= 0"}')
            eps = policy_residual(policy, xi, self.initial_image, self.p.policy_sample, seed)
        except MissingImage as exc:
            raise EpisodeFailure(R.PERCEPTION_FAILED, str(exc)) from exc
        except ValueError as exc:
            raise EpisodeFailure(R.BAD_GOAL, str(exc)) from exc
        self.get_logger().info(f'policy residual |eps| {float(np.linalg.norm(eps)):.3f}')
        return eps

    def grab_frame(self) -> Optional[Frame]:
        """Return the newest colour frame with its depth and camera info (None: no frame)."""
        colour = self.camera.msg()
        return None if colour is None else Frame(colour, self.camera_info.msg(),
                                                 self.depth.msg())

    async def episode(self, handle, job: EpisodeJob, eps_of, phase):
        """Perceive, predict, execute xi + eps, reward, hand open and arm home: (xi, eps, r)."""
        steps = self.steps
        try:
            self.joints.start()
            self.prior_msg, self.current = None, {}
            await steps.perceive(job.prompt, phase)
            self.initial_image = self.camera.latest_rgb_or_none()
            self.frames = {'initial': self.grab_frame()}
            prior, xi = await steps.predict_prior(job.task, job.prompt, phase, job.prior,
                                                  job.prior_seed)
            self.prior_msg = prior
            if handle.is_cancel_requested:
                raise EpisodeCanceled()
            eps = eps_of(xi)
            self.current = {'xi': [float(v) for v in xi], 'eps': [float(v) for v in eps]}
            await steps.execute_grasp(handle, prior.header.frame_id, xi, eps, phase, job.task)
            reward = await steps.reward(handle, job.source, job.run_id, job.index, job.task,
                                        phase)
            self.current.update(reward=float(reward), source=job.source)
            self.frames['final'] = self.grab_frame()
            self.joints.stop()
            await steps.home(phase)
            return xi, eps, reward
        except EpisodeCanceled:
            await steps.safe_reset(job.seed, phase)
            raise
        except EpisodeFailure as exc:
            if exc.code != R.RESET_FAILED:
                await steps.safe_reset(job.seed, phase)
            raise
        except Exception as exc:  # a bug or I/O error: hand open, arm home, then a clear abort
            message = str(exc) if isinstance(exc, ValueError) else \
                self._unexpected('episode', exc)
            await steps.safe_reset(job.seed, phase)
            raise EpisodeFailure(R.BAD_GOAL if isinstance(exc, ValueError)
                                 else R.SERVICE_UNAVAILABLE, message) from exc
        finally:
            self.joints.stop()

    def make_record(self, run_id, index, task, xi, eps, reward, source) -> EpisodeRecord:
        """Return the EpisodeRecord of a finished episode."""
        return EpisodeRecord(run_id=run_id, episode=index, task=task,
                             xi=[float(v) for v in xi], eps=[float(v) for v in eps],
                             parameter_names=self.space.names, reward=float(reward),
                             reward_source=source, stamp=self.get_clock().now().to_msg())

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
            run = load_distribution(self.run_root, goal.run_id) \
                if goal.run_id and goal.mode != 'prior' else None
            return one_off_residual(goal.mode, self.std0, rng, run)

        try:
            prior, prior_seed = run_prior(self.run_root, goal.run_id)
            job = EpisodeJob(goal.task, goal.object_prompt, source, goal.run_id, -1, seed,
                             prior, prior_seed)
            xi, eps, reward = await self.episode(handle, job, eps_of, phase)
            result.record = self.make_record(goal.run_id, -1, goal.task, xi, eps, reward, source)
            self.records.publish(result.record)
            result.reward = reward
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
            result.message = self._unexpected('run_episode', exc)
            handle.abort()
        finally:
            self.busy = False
        self.get_logger().info(f'run_episode: {result.message}')
        return result

    # --- fine-tuning ------------------------------------------------------------------------
    def open_run(self, g):
        """Open (create or resume) the goal's run; return (run, 0, '') or (None, code, why)."""
        try:
            run = FineTuneRun.open(self.run_root, FineTuneRequest(
                task=g.task, object_prompt=g.object_prompt, episodes=g.episodes,
                warmup_episodes=g.warmup_episodes, elites=g.elites,
                initial_std=list(g.initial_std), reward_source=g.reward_source,
                optimizer=g.optimizer, prior=g.prior, run_id=g.run_id, resume=g.resume,
                seed=g.seed), self.std0, self.p.elites, self.p.default_reward_source,
                self.space.names)
        except FineTuneError as exc:
            return None, FINE_TUNE_CODES.get(exc.reason, F.BAD_GOAL), str(exc)
        except (OSError, ValueError) as exc:
            return None, F.BAD_GOAL, (f'run {g.run_id or "(new)"} cannot be opened under '
                                      f'{self.run_root}: {exc}')
        for warning in run.warnings:  # how a resumed run's optimiser was restored
            self.get_logger().warning(f'run {run.store.run_id!r}: {warning}')
        error = reward_error(run.settings.reward_source, self.embedding_ready())
        if error:
            return None, F.BAD_GOAL, (f'run {run.store.run_id!r} uses reward_source '
                                      f'{run.settings.reward_source!r}: {error}')
        return run, 0, ''

    def record_episode(self, run: FineTuneRun, k: int, xi, eps, reward: float) -> None:
        """Store a finished episode of a run: I0, bag, the record (atomic), then publish it."""
        s, run_dir = run.settings, run.store.dir
        if self.p.save_initial_images and self.initial_image is not None:
            from deft_cem.runs import save_initial_image
            try:
                save_initial_image(run_dir, k, self.initial_image)
            except (OSError, ValueError) as exc:
                self.get_logger().warning(f'could not store I0 of episode {k}: {exc}')
        record = self.make_record(run.store.run_id, k, s.task, xi, eps, reward, s.reward_source)
        bag = ''
        if self.bags is not None and self.frames.get('initial') is not None:
            path = episode_bag_path(run_dir, k)
            record.bag_path = str(path)
            try:
                if path.exists():  # an episode re-run after a crash or a discard: the new counts
                    shutil.rmtree(path)
                self.bags.write(path, initial=self.frames['initial'],
                                final=self.frames.get('final'), joint_states=self.joints.kept,
                                prior=self.prior_msg, record=record, metadata={
                                    'task': s.task, 'object_prompt': s.object_prompt,
                                    'seed': s.seed, 'optimizer': s.optimizer, 'prior': s.prior,
                                    'mode': 'fine_tune'})
                bag = str(path)
            except (OSError, ValueError) as exc:
                self.get_logger().warning(f'could not write the bag of episode {k}: {exc}')
                record.bag_path = ''
        run.record(xi, eps, reward, s.reward_source, bag_path=bag)
        self.records.publish(record)

    async def fine_tune(self, handle):
        """Execute a fine_tune goal: N episodes of Algorithm 1, each recorded before the next."""
        g, result, run = handle.request, F(best_reward=math.nan), None
        error = self.malformed.pop(id(g), None)
        if error is not None:
            return self._refuse(handle, result, F.BAD_GOAL, 'fine_tune', error)
        try:
            run, code, error = self.open_run(g)
            if run is None:
                return self._refuse(handle, result, code, 'fine_tune', error)
            result.run_dir = str(run.store.dir)
            await self.tune(handle, run, result)
        except Exception as exc:  # never an empty result and a stuck node
            result.error_code, result.message = F.EPISODE_FAILED, self._unexpected('fine_tune',
                                                                                   exc)
            if handle.is_active:
                handle.abort()
        finally:
            self.busy = False
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
        s, run_id = run.settings, run.store.run_id
        fb = FineTune.Feedback(episodes=s.episodes)

        def phase(name, detail=''):
            fb.episode, fb.phase = run.next_episode, name
            fb.std, fb.best_reward = run.optimizer.std.tolist(), run.best_reward
            handle.publish_feedback(fb)

        self.get_logger().info(f'fine_tune {run_id}: episodes {run.next_episode}..'
                               f'{s.episodes - 1} in {run.store.dir}')
        k, where = run.next_episode, 'episode'
        try:
            await self.steps.reset(s.seed, phase)  # a crashed run may have left the hand closed
            while not run.done:
                k, where, eps_k = run.next_episode, 'episode', run.ask()
                job = EpisodeJob(s.task, s.object_prompt, s.reward_source, run_id, k, s.seed,
                                 s.prior, s.seed)
                try:
                    xi, eps, reward = await self.episode(handle, job, lambda _, e=eps_k: e, phase)
                except EpisodeFailure as exc:
                    if exc.code != R.REWARD_DISCARDED:
                        raise
                    self.get_logger().info(f'episode {k} discarded; recording it again')
                    await self.steps.operator_reset(handle, run_id, k, s.task, phase)
                    continue
                self.record_episode(run, k, xi, eps, reward)
                fb.last_reward = reward
                phase('warmup' if k + 1 < s.warmup_episodes else 'refit',
                      f'episode {k} reward {reward:.3f}')
                self.get_logger().info(f'{run_id} episode {k}/{s.episodes}: reward '
                                       f'{reward:.3f}, best {run.best_reward:.3f}')
                where = 'scene reset after episode'
                await self.steps.reset_scene(handle, s.seed, run_id, k, s.task, phase)
            result.success = True
            result.message = f'{s.episodes} episodes, best reward {run.best_reward:.3f}'
            handle.succeed()
        except EpisodeCanceled:
            result.error_code = F.CANCELED
            result.message = (f'cancelled after {run.next_episode} finished episodes (kept; '
                              'hand opened, arm home; resume with resume: true)')
            handle.canceled()
        except EpisodeFailure as exc:
            result.error_code = F.EPISODE_FAILED
            result.message = (f'{where} {k} failed: {exc}; the {run.next_episode} finished '
                              'episodes are kept (resume with resume: true)')
            handle.abort()


def main(args=None):
    """Run the episode node."""
    # Every callback is a coroutine that awaits, never blocks: one thread serves them all.
    raise SystemExit(run_node(EpisodeNode, args, threads=1))
