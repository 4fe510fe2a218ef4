"""
The episode orchestrator node.

`run_episode` runs one episode, `fine_tune` DEFT's Algorithm 1 over N episodes, `submit_reward`
takes the operator's score, `episodes` carries a record per finished episode.
"""

import math
import os
from pathlib import Path
import shutil
from typing import Optional

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState

from deft_cem.episode import (
    MODES,
    REWARD_SOURCES,
    load_demonstrations,
    parse_demonstration,
    residual,
)
from deft_cem.episode_bag import EpisodeBagWriter, Frame, episode_bag_path
from deft_cem.episode_steps import EpisodeCanceled, EpisodeFailure, EpisodeSteps, StepSettings
from deft_cem.fine_tune import FineTuneError, FineTuneRequest, FineTuneRun, load_distribution
from deft_cem.grasp_params import ParameterSpace
from deft_cem.report import write_report
from deft_cem.rewards import OperatorRewardBox
from deft_cem.runs import RunStore, check_run_id
from deft_common.image_codec import LatestFrame
from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_async import wait_until
from deft_common.ros_params import Param, declare
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.action import FineTune, RunEpisode
from deft_interfaces.msg import EpisodeRecord
from deft_interfaces.srv import SubmitReward

R, F = RunEpisode.Result, FineTune.Result
DEMONSTRATIONS = 'demonstrations.yaml'  # installed in share/deft_cem/config
PARAMS = (
    Param('default_reward_source', 'sim', 'Reward source when a goal leaves it empty.',
          choices=REWARD_SOURCES),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('run_root', '', 'Directory of fine-tuning runs; empty = $ROS_HOME/deft/runs.'),
    Param('elites', 5, 'Default number of elites E of fine_tune.', range=(1, 1000)),
    Param('contact_std', 0.02, 'Initial residual std of the contact point, m.', range=(0.0, 0.2)),
    Param('wrist_std', 0.2, 'Initial residual std of the wrist rotation, rad.', range=(0.0, 1.5)),
    Param('hand_std', 0.1, 'Initial residual std of each hand joint, rad.', range=(0.0, 1.0)),
    Param('tau_std', 0.1, 'Initial residual std of the trajectory scale.', range=(0.0, 1.0)),
    Param('post_grasp_waypoints', [0.0, 0.0, 0.06, 0.0, 0.0, 0.12],
          'Demonstrated post-grasp trajectory tau of tasks without a demonstration in '
          '`demonstrations`: x, y, z offsets from the grasp, m, base axes.'),
    Param('post_grasp_rotations', [0.0], 'Turns of the wrist along that tau: one rotation '
          'vector per waypoint, rad, base axes, applied to the grasp orientation ([0.0] or '
          'empty = keep the grasp orientation).'),
    Param('demonstrations', '', 'YAML of demonstrated taus per task text (waypoints, '
          "rotations); empty = the installed one of the simulated twin's tasks; 'none' = only "
          'post_grasp_waypoints.'),
    Param('approach_distance', 0.08, 'Pre-grasp distance before the contact, m.',
          range=(0.0, 0.5)),
    Param('settle_time', 0.3, 'Seconds the simulated scene settles after the motion before the '
          'sim reward scores it.', range=(0.0, 10.0)),
    Param('reset_sim', True, 'Reset the simulated scene (sim/reset) at the end of an episode.'),
    Param('operator_timeout', 600.0, 'Seconds to wait for the operator reward.',
          range=(1.0, 86400.0)),
    Param('service_timeout', 10.0, 'Seconds to wait for a service to exist and answer.',
          range=(0.1, 600.0)),
    Param('arm_timeout', 120.0, 'Seconds the whole arm/execute_grasp may take.',
          range=(1.0, 3600.0)),
    Param('hand_timeout', 15.0, 'Seconds opening the hand may take.', range=(0.5, 600.0)),
    Param('embedding_encoder', 'resnet18', 'embedding reward: image encoder.',
          choices=('resnet18', 'r3m')),
    Param('embedding_weights', '', 'embedding reward: encoder weights (a torchvision ResNet-18 '
          'state dict, or an R3M checkpoint); empty = the embedding reward is off.'),
    Param('embedding_goal_image', '', 'embedding reward: image of the task done (PNG/JPEG).'),
    Param('embedding_scale', 20.0, 'embedding reward: distance scale d0 of reward = '
          'exp(-d / d0), in embedding units.', range=(1e-6, 1e6)),
    Param('image_qos', 'reliable', 'Reliability of the camera subscription (initial and final '
          'images): reliable or best_effort.', choices=('reliable', 'best_effort')),
    Param('final_image_timeout', 5.0, 'Seconds to wait for a camera frame taken after the '
          'motion (embedding reward).', range=(0.1, 120.0)),
    Param('policy_checkpoint', 'policy_cvae.pt', 'mode policy: residual policy checkpoint '
          '(deft_train_policy): an absolute path, or a file name in the directory of the '
          "goal's run_id (the default is what deft_train_policy writes there)."),
    Param('policy_resnet_weights', '', 'mode policy: ResNet-18 weights of phi(I0) if they moved '
          'since training (empty = the path stored in the checkpoint).'),
    Param('policy_sample', False, 'mode policy, cVAE: draw z ~ N(0, I) (seeded by the goal) '
          'instead of z = 0.'),
    Param('record_bags', True, 'Write a rosbag2 (MCAP) per fine-tuning episode to '
          '<run>/bags/<k>: initial and final frames, camera info, hand joint states, the prior, '
          'the record.'),
    Param('bag_joint_rate_hz', 10.0, 'Rate hand joint states are kept for the bag, Hz.',
          range=(0.1, 1000.0)),
    Param('save_initial_images', True, "Store each fine-tuning episode's initial image I0 in "
          "the run (the residual policy's input)."),
)
FINE_TUNE_CODES = {'BAD_GOAL': F.BAD_GOAL, 'RUN_EXISTS': F.RUN_EXISTS,
                   'RUN_NOT_FOUND': F.RUN_NOT_FOUND}


class EpisodeNode(Node):
    """Runs DEFT episodes and fine-tuning runs; one at a time (one robot)."""

    def __init__(self, **kwargs):
        super().__init__('episode', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            hand = load_hand_config(self.p.hand_config)
            self.space = ParameterSpace(hand.joint_names, hand.lower, hand.upper)
            self.std0 = self.space.default_std(self.p.contact_std, self.p.wrist_std,
                                               self.p.hand_std, self.p.tau_std)
            turns = self.p.post_grasp_rotations if any(self.p.post_grasp_rotations) else []
            tau = parse_demonstration(self.p.post_grasp_waypoints, turns)
            demonstrations = self.load_demonstrations()
        except (ValueError, OSError) as exc:
            raise ConfigurationError(str(exc)) from exc
        self.embedding = None
        if self.p.embedding_weights:
            from deft_cem.embedding_reward import EmbeddingReward  # torch: only when used
            try:
                self.embedding = EmbeddingReward.from_config(
                    self.p.embedding_encoder, self.p.embedding_weights,
                    self.p.embedding_goal_image or None, scale=self.p.embedding_scale)
            except (ValueError, OSError) as exc:
                raise ConfigurationError(f'embedding reward: {exc}') from exc
        if self.p.default_reward_source == 'embedding' and not self.embedding_ready():
            raise ConfigurationError('default_reward_source is embedding, but embedding_weights '
                                     'and embedding_goal_image are not both set')
        self.policies = {}  # checkpoint path -> (mtime, policy): loaded on first use
        self.camera, self.depth, self.camera_info = LatestFrame(), LatestFrame(), LatestFrame()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE
                         if self.p.image_qos == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, 'camera/color/image_raw', self.camera.keep, qos)
        self.bags = None
        if self.p.record_bags:
            self.bags = EpisodeBagWriter(namespace=self.get_namespace())
            self.create_subscription(Image, 'camera/depth/image_raw', self.depth.keep, qos)
            self.create_subscription(CameraInfo, 'camera/color/camera_info',
                                     self.camera_info.keep, qos)
            self.create_subscription(JointState, 'hand/joint_states', self.log_joints, 10)
        self.joint_log: list = []
        self.logging_joints = False
        self.frames = {}  # 'initial' / 'final' -> Frame of the episode under way
        self.prior_msg = None
        ros_home = Path(os.environ.get('ROS_HOME', Path.home() / '.ros'))
        self.run_root = Path(self.p.run_root or ros_home / 'deft' / 'runs').expanduser()
        group = ReentrantCallbackGroup()
        self.rewards = OperatorRewardBox()
        self.steps = EpisodeSteps(self, group, self.space, tau, StepSettings(
            self.p.service_timeout, self.p.arm_timeout, self.p.hand_timeout,
            self.p.operator_timeout, self.p.approach_distance, self.p.reset_sim,
            self.p.settle_time), self.rewards,
            self.announce_reward_request, demonstrations)
        self.records = self.create_publisher(EpisodeRecord, 'episodes', 10)
        # The episode waiting for its operator score (latched for a `deft_score` started late).
        self.reward_requests = self.create_publisher(
            EpisodeRecord, 'reward_request',
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.current = {}
        self.initial_image: Optional[np.ndarray] = None
        self.busy = False
        self.create_service(SubmitReward, 'submit_reward', self.on_submit_reward,
                            callback_group=group)
        cancel = lambda _: CancelResponse.ACCEPT  # noqa: E731
        self.run_server = ActionServer(
            self, RunEpisode, 'run_episode', execute_callback=self.run_episode,
            goal_callback=self.on_run_episode_goal, cancel_callback=cancel, callback_group=group)
        self.tune_server = ActionServer(
            self, FineTune, 'fine_tune', execute_callback=self.fine_tune,
            goal_callback=self.on_fine_tune_goal, cancel_callback=cancel, callback_group=group)
        self.get_logger().info(f'ready: {self.space.size} grasp parameters, runs in '
                               f'{self.run_root}, reward default {self.p.default_reward_source}')

    # --- goals and the operator's reward -------------------------------------------------
    def policy_path(self, run_id: str) -> Optional[Path]:
        """Return the checkpoint mode policy uses for a goal's run_id (None: none exists)."""
        path = Path(self.p.policy_checkpoint).expanduser()
        if not path.is_absolute():
            if not run_id:
                return None
            try:
                path = self.run_root / check_run_id(run_id) / path
            except ValueError:
                return None
        return path if path.is_file() else None

    def load_policy(self, path: Path):
        """Load (or reuse) the residual policy in `path`; EpisodeFailure saying why not."""
        mtime = path.stat().st_mtime_ns
        cached = self.policies.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        from deft_cem.policy import load_policy  # torch: only when used
        try:
            policy = load_policy(path, self.space.names, self.p.policy_resnet_weights or None)
        except (ValueError, OSError) as exc:
            raise EpisodeFailure(R.BAD_GOAL, f'residual policy: {exc}') from exc
        if policy.config.feature_kind == 'file':
            raise EpisodeFailure(R.BAD_GOAL, f'residual policy {path} was trained on precomputed '
                                 'feature files; the robot can only give it images (train with '
                                 '--features image or none)')
        self.get_logger().info(f'residual policy {path}: {policy.config.model!r} on '
                               f'{policy.config.feature_kind!r} features, z '
                               f'{"sampled" if self.p.policy_sample else "= 0"}')
        self.policies[path] = (mtime, policy)
        return policy

    def log_joints(self, msg: JointState) -> None:
        """Keep hand joint states during an episode, at most at bag_joint_rate_hz."""
        if not self.logging_joints:
            return
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if self.joint_log:
            last = self.joint_log[-1].header.stamp
            if t - (last.sec + last.nanosec * 1e-9) < 1.0 / self.p.bag_joint_rate_hz:
                return
        self.joint_log.append(msg)

    def grab_frame(self) -> Optional[Frame]:
        """Return the newest colour frame with its depth and camera info (None: no frame)."""
        colour = self.camera.msg()
        if colour is None:
            return None
        return Frame(colour, self.camera_info.msg(), self.depth.msg())

    def write_bag(self, run_dir: Path, episode: int, record: EpisodeRecord, metadata: dict):
        """Write the episode's bag; return its path ('' when off or it failed: a warning)."""
        if self.bags is None or self.frames.get('initial') is None:
            return ''
        path = episode_bag_path(run_dir, episode)
        record.bag_path = str(path)
        try:
            if path.exists():  # an episode re-run after a crash or a discard: the new one counts
                shutil.rmtree(path)
            self.bags.write(path, initial=self.frames['initial'], final=self.frames.get('final'),
                            joint_states=self.joint_log, prior=self.prior_msg, record=record,
                            metadata=metadata)
        except (OSError, ValueError) as exc:
            self.get_logger().warning(f'could not write the bag of episode {episode}: {exc}')
            record.bag_path = ''
            return ''
        return str(path)

    def embedding_ready(self) -> bool:
        """Return True when the embedding reward has an encoder and a goal image."""
        return self.embedding is not None and self.embedding.has_goal

    def _reward_error(self, source: str) -> Optional[str]:
        if source not in REWARD_SOURCES:
            return f'reward_source {source!r} is not one of {", ".join(REWARD_SOURCES)}'
        if source == 'embedding' and not self.embedding_ready():
            return ('reward_source "embedding" needs the parameters embedding_weights and '
                    'embedding_goal_image')
        return None

    async def final_image(self, after_ns: int) -> np.ndarray:
        """Return the first camera frame stamped after `after_ns` (the end of the motion)."""
        ok = await wait_until(self, lambda: self.camera.stamp_ns() > after_ns,
                              self.p.final_image_timeout)
        if not ok:
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, 'no camera frame after the motion within '
                                 f'{self.p.final_image_timeout} s (camera/color/image_raw)')
        try:
            return self.camera.rgb()
        except ValueError as exc:
            raise EpisodeFailure(R.SERVICE_UNAVAILABLE, f'unusable camera frame: {exc}') from exc

    def _accept(self, kind: str, error: Optional[str]) -> GoalResponse:
        if self.busy:
            error = 'an episode or run is already going (one robot, one at a time)'
        if error:
            self.get_logger().warning(f'{kind} goal rejected: {error}')
            return GoalResponse.REJECT
        self.busy = True
        return GoalResponse.ACCEPT

    def on_run_episode_goal(self, goal) -> GoalResponse:
        """Reject malformed run_episode goals (the reason goes to the log)."""
        error = None
        if not goal.task.strip():
            error = 'task is empty; say what to do, e.g. "pick up the cup"'
        elif goal.mode not in MODES:
            error = f'mode {goal.mode!r} is not one of {", ".join(MODES)}'
        elif goal.mode == 'policy' and self.policy_path(goal.run_id) is None:
            error = (f'mode "policy": no checkpoint {self.p.policy_checkpoint!r} for run_id '
                     f'{goal.run_id!r} (train one with deft_train_policy <run dir>)')
        else:
            error = self._reward_error(goal.reward_source or self.p.default_reward_source)
        return self._accept('run_episode', error)

    def on_fine_tune_goal(self, goal) -> GoalResponse:
        """Reject fine_tune goals that are malformed on their face; the rest is checked later."""
        error = None
        if not goal.task.strip():
            error = 'task is empty; say what to do, e.g. "pick up the cup"'
        elif goal.reward_source:
            error = self._reward_error(goal.reward_source)
        return self._accept('fine_tune', error)

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

    def announce_reward_request(self, run_id: Optional[str], episode: int, task: str) -> None:
        """
        Publish which episode waits for the operator (for deft_score and rqt), latched.

        run_id None publishes "nothing waits" (reward_source empty), so a terminal started later
        is not shown an episode that was already scored.
        """
        if run_id is None:
            record = EpisodeRecord(episode=-1, reward=math.nan, reward_source='',
                                   stamp=self.get_clock().now().to_msg())
            self.reward_requests.publish(record)
            return
        record = EpisodeRecord(run_id=run_id, episode=episode, task=task, reward=math.nan,
                               xi=self.current.get('xi', []), eps=self.current.get('eps', []),
                               parameter_names=self.space.names, reward_source='operator',
                               stamp=self.get_clock().now().to_msg())
        self.reward_requests.publish(record)

    def on_submit_reward(self, request, response):
        """Deliver the operator's score to the episode waiting for it."""
        response.accepted, response.message = self.rewards.submit(
            request.run_id, request.episode, request.reward, request.discard)
        # rclpy ties a severity to each call site: one call per severity.
        if response.accepted:
            self.get_logger().info(f'submit_reward: {response.message}')
        else:
            self.get_logger().warning(f'submit_reward: {response.message}')
        return response

    # --- one episode ----------------------------------------------------------------------
    async def episode(self, handle, task, prompt, source, run_id, index, eps_of, seed, phase,
                      prior_method='affordance', prior_seed=None):
        """Perceive, predict, execute xi + eps, reward, reset; return (xi, eps, reward)."""
        steps = self.steps
        try:
            self.joint_log, self.logging_joints, self.prior_msg = [], True, None
            await steps.perceive(prompt, phase)
            self.initial_image = self.camera.latest_rgb_or_none()
            self.frames = {'initial': self.grab_frame()}
            prior, xi = await steps.predict_prior(task, prompt, phase, prior_method, prior_seed)
            self.prior_msg = prior
            if handle.is_cancel_requested:
                raise EpisodeCanceled()
            eps = eps_of(xi)
            self.current = {'xi': [float(v) for v in xi], 'eps': [float(v) for v in eps]}
            await steps.execute_grasp(handle, prior.header.frame_id, xi, eps, phase, task)
            if source == 'embedding':
                phase('reward', 'embedding distance of the final image to the goal image')
                final = await self.final_image(self.get_clock().now().nanoseconds)
                score = self.embedding.score(final)
                self.get_logger().info(f'embedding distance {score.distance:.3f} -> reward '
                                       f'{score.reward:.3f}')
                reward = score.reward
            else:
                reward = await steps.reward(handle, source, run_id, index, task, phase)
            self.frames['final'] = self.grab_frame()
            self.logging_joints = False
            await steps.reset(seed, phase)
            return xi, eps, reward
        except EpisodeCanceled:
            await steps.safe_reset(seed, phase)
            raise
        except EpisodeFailure as exc:
            if exc.code != R.RESET_FAILED:
                await steps.safe_reset(seed, phase)
            raise

    def policy_residual(self, run_id: str, xi, seed) -> np.ndarray:
        """Return eps = pi(I0, xi) for this episode; EpisodeFailure when it cannot."""
        path = self.policy_path(run_id)
        if path is None:
            raise EpisodeFailure(R.BAD_GOAL, 'the residual policy checkpoint disappeared')
        policy = self.load_policy(path)
        image = None
        if policy.config.feature_kind == 'image':
            image = self.initial_image
            if image is None:
                raise EpisodeFailure(R.PERCEPTION_FAILED, 'mode policy needs the initial image '
                                     'I0; nothing came on camera/color/image_raw')
        try:
            eps = policy.residual(np.asarray(xi, dtype=float), image=image,
                                       sample=self.p.policy_sample, seed=seed)
        except ValueError as exc:
            raise EpisodeFailure(R.BAD_GOAL, f'residual policy: {exc}') from exc
        self.get_logger().info(f'policy residual |eps| {float(np.linalg.norm(eps)):.3f}')
        return eps

    def save_initial_image(self, run_dir: Path, episode: int) -> None:
        """Store I0 of a finished episode beside its record (before the record is written)."""
        from deft_cem.runs import save_initial_image
        try:
            save_initial_image(run_dir, episode, self.initial_image)
        except (OSError, ValueError) as exc:
            self.get_logger().warning(f'could not store I0 of episode {episode}: {exc}')

    def make_record(self, run_id, index, task, xi, eps, reward, source) -> EpisodeRecord:
        """Return the EpisodeRecord of a finished episode."""
        return EpisodeRecord(run_id=run_id, episode=index, task=task,
                             xi=[float(v) for v in xi], eps=[float(v) for v in eps],
                             parameter_names=self.space.names, reward=float(reward),
                             reward_source=source, stamp=self.get_clock().now().to_msg())

    def publish_record(self, run_id, index, task, xi, eps, reward, source):
        """Publish and return the EpisodeRecord of a finished episode."""
        record = self.make_record(run_id, index, task, xi, eps, reward, source)
        self.records.publish(record)
        return record

    async def run_episode(self, handle):
        """Execute one run_episode goal."""
        goal = handle.request
        source = goal.reward_source or self.p.default_reward_source
        seed = None if goal.seed < 0 else int(goal.seed)
        rng = np.random.default_rng(seed)
        result = R(reward=math.nan)
        result.record.parameter_names = self.space.names

        def phase(name, detail=''):
            handle.publish_feedback(RunEpisode.Feedback(phase=name, detail=detail))

        def eps_of(xi):
            if goal.mode == 'policy':
                return self.policy_residual(goal.run_id, xi, seed)
            mean, std = np.zeros(self.space.size), self.std0
            if goal.run_id and goal.mode != 'prior':
                loaded = load_distribution(self.run_root, goal.run_id)
                if loaded is not None:
                    mean, std = loaded
            if goal.mode == 'prior':
                return np.zeros(self.space.size)
            return mean + residual(goal.mode, std, rng)

        prior_method, prior_seed = 'affordance', None
        try:
            if goal.run_id:  # an episode of a run uses the run's prior (and its heuristic seed)
                store = RunStore(self.run_root, check_run_id(goal.run_id))
                if store.exists:
                    settings = store.settings()
                    prior_method, prior_seed = settings.prior, settings.seed
            xi, eps, reward = await self.episode(handle, goal.task, goal.object_prompt, source,
                                                 goal.run_id, -1, eps_of, seed, phase,
                                                 prior_method, prior_seed)
            result.record = self.publish_record(goal.run_id, -1, goal.task, xi, eps, reward,
                                                source)
            result.success, result.reward = True, reward
            result.message = f'episode done: reward {reward:.3f} ({source})'
            handle.succeed()
        except EpisodeCanceled:
            result.error_code, result.message = R.CANCELED, 'cancelled; hand opened, arm home'
            handle.canceled()
        except (EpisodeFailure, ValueError) as exc:
            result.error_code = getattr(exc, 'code', R.BAD_GOAL)
            result.message = str(exc)
            handle.abort()
        finally:
            self.busy = False
        self.get_logger().info(f'run_episode: {result.message}')
        return result

    # --- fine-tuning ----------------------------------------------------------------------
    async def fine_tune(self, handle):
        """Execute a fine_tune goal: N episodes of Algorithm 1, each recorded before the next."""
        g = handle.request
        result = F(best_reward=math.nan)
        try:
            run = FineTuneRun.open(self.run_root, FineTuneRequest(
                task=g.task, object_prompt=g.object_prompt, episodes=g.episodes,
                warmup_episodes=g.warmup_episodes, elites=g.elites,
                initial_std=list(g.initial_std), reward_source=g.reward_source,
                optimizer=g.optimizer, prior=g.prior, run_id=g.run_id, resume=g.resume,
                seed=g.seed), self.std0, self.p.elites, self.p.default_reward_source,
                self.space.names)
        except FineTuneError as exc:
            self.busy = False
            result.error_code, result.message = FINE_TUNE_CODES[exc.reason], str(exc)
            handle.abort()
            self.get_logger().warning(f'fine_tune: {exc}')
            return result
        s, run_id = run.settings, run.store.run_id
        result.run_dir = str(run.store.dir)
        fb = FineTune.Feedback(episodes=s.episodes)

        def phase(name, detail=''):
            fb.episode, fb.phase = run.next_episode, name
            fb.std = run.optimizer.std.tolist()
            fb.best_reward = run.best_reward
            handle.publish_feedback(fb)

        self.get_logger().info(f'fine_tune {run_id}: episodes {run.next_episode}..'
                               f'{s.episodes - 1} in {run.store.dir}')
        try:
            await self.steps.reset(s.seed, phase)  # a crashed run may have left the hand closed
            while not run.done:
                k = run.next_episode
                eps_k = run.ask()
                try:
                    xi, eps, reward = await self.episode(
                        handle, s.task, s.object_prompt, s.reward_source, run_id, k,
                        lambda xi, eps_k=eps_k: eps_k, s.seed, phase, s.prior, s.seed)
                except EpisodeFailure as exc:
                    if exc.code != R.REWARD_DISCARDED:
                        raise
                    self.get_logger().info(f'episode {k} discarded; recording it again')
                    continue
                if self.p.save_initial_images and self.initial_image is not None:
                    self.save_initial_image(run.store.dir, k)
                record = self.make_record(run_id, k, s.task, xi, eps, reward, s.reward_source)
                bag = self.write_bag(run.store.dir, k, record, {
                    'task': s.task, 'object_prompt': s.object_prompt, 'seed': s.seed,
                    'optimizer': s.optimizer, 'prior': s.prior, 'mode': 'fine_tune'})
                run.record(xi, eps, reward, s.reward_source, bag_path=bag)
                self.records.publish(record)
                fb.last_reward = reward
                phase('warmup' if k + 1 < s.warmup_episodes else 'refit',
                      f'episode {k} reward {reward:.3f}')
                self.get_logger().info(f'{run_id} episode {k}/{s.episodes}: reward '
                                       f'{reward:.3f}, best {run.best_reward:.3f}')
            result.success = True
            result.message = f'{s.episodes} episodes, best reward {run.best_reward:.3f}'
            handle.succeed()
        except EpisodeCanceled:
            result.error_code = F.CANCELED
            result.message = (f'cancelled after {run.next_episode} finished episodes (kept; '
                              'resume with resume: true)')
            handle.canceled()
        except EpisodeFailure as exc:
            result.error_code = F.EPISODE_FAILED
            result.message = (f'episode {run.next_episode} failed: {exc}; the '
                              f'{run.next_episode} finished episodes are kept')
            handle.abort()
        finally:
            self.busy = False
        result.rewards, result.best_reward = run.rewards, run.best_reward
        try:
            result.message += f'; report {write_report(run.store.dir)}'
        except (OSError, ValueError) as exc:
            self.get_logger().error(f'could not write the report of {run_id}: {exc}')
        self.get_logger().info(f'fine_tune {run_id}: {result.message}')
        return result


def main(args=None):
    """Run the episode node."""
    # Every callback is a coroutine that awaits, never blocks: one thread serves them all.
    raise SystemExit(run_node(EpisodeNode, args, threads=1))
