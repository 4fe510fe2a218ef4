"""
The simulated world node: camera topics, `sim/reset`, `sim/reward`, fed by the arm and hand.

It owns the simulated clock: a thread advances the world in steps of 1/physics_rate_hz s of sim
time and publishes `/clock` after each; the nodes of the sim profile run on it (use_sim_time).
When it may step, how fast, and when it renders is deft_sim.sim_clock's (lockstep with the arm's
and hand's stamped states, as fast as it goes while the robot acts, real time when idle; frames
after a reset, when the robot comes to rest, and at camera_rate_hz of wall time for viewers).
Without use_sim_time the clock runs at real time.
"""

import threading
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header

from deft_common import image_codec
from deft_common.node_main import ConfigurationError, SideLane, internal_error, run_node
from deft_common.ros_params import Param, declare
from deft_common.rotations import Transform
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.srv import GetTaskReward, ResetSim
from deft_sim.kinematic_world import SPLITS, PinholeCamera, TabletopWorld, WorldSettings
from deft_sim.mujoco_world import TASKS, MujocoSettings, MujocoWorld
from deft_sim.sim_clock import Activity, ClockSettings, Pace, Peers

PARAMS = (
    Param('backend', 'mujoco', 'World backend: fake (kinematic tabletop, no physics, a box that '
          'sticks to a closed hand) or mujoco (physics: contact and friction hold the cup).',
          choices=('fake', 'mujoco')),
    Param('mujoco_task', 'pick_cup', 'mujoco: task scored by sim/reward.', choices=TASKS),
    Param('physics_rate_hz', 25.0, 'Steps of the simulated clock per second of sim time: the '
          'world advances (mujoco: in whole 2 ms physics timesteps) and /clock is published '
          'every 1/physics_rate_hz s of sim time.', range=(10.0, 1000.0)),
    Param('max_peer_lag', 0.1, 'Sim seconds the world may run ahead of the newest state of the '
          'arm (arm/wrist_pose) or the hand (hand/joint_states): at least their state period '
          'plus one step.', range=(0.001, 10.0)),
    Param('peer_timeout', 0.5, 'Wall seconds of silence after which the arm or the hand is not '
          'waited for (not started, or gone).', range=(0.01, 60.0)),
    Param('idle_after', 0.5, 'Sim seconds without a change of the wrist or hand after which the '
          'clock runs at real time (it runs as fast as it goes while they change).',
          range=(0.0, 3600.0)),
    Param('max_real_time_factor', 0.0, 'Cap of the fast clock, times real time (0: as fast as '
          'the CPU and the lockstep with the arm and hand allow).', range=(0.0, 1000.0)),
    Param('rest_frame_after', 0.25, 'Sim seconds without a change of the wrist or hand after a '
          'motion before the frame of the rest is rendered.', range=(0.0, 60.0)),
    Param('base_frame', 'base_link', 'Frame of the world (REP 105).'),
    Param('camera_frame', 'camera_color_optical_frame', 'Optical frame of the camera (REP 103).'),
    Param('camera_to_base', [0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0],
          'Camera optical frame pose in base_frame: x y z (m) qx qy qz qw.'),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('camera_rate_hz', 2.0, 'Rate of RGB-D frames for viewers, Hz of wall time (frames are '
          'also rendered after each reset and when the robot comes to rest).',
          range=(0.1, 60.0)),
    Param('width', 640, 'Image width, px.', range=(16, 4096)),
    Param('height', 480, 'Image height, px.', range=(16, 4096)),
    Param('fx', 554.3, 'Focal length x, px.', range=(1.0, 1e5)),
    Param('fy', 554.3, 'Focal length y, px.', range=(1.0, 1e5)),
    Param('cx', 319.5, 'Principal point x, px.', range=(0.0, 4096.0)),
    Param('cy', 239.5, 'Principal point y, px.', range=(0.0, 4096.0)),
    Param('object_size', [0.06, 0.06, 0.10], 'Box size x y z, m.'),
    Param('grasp_tolerance', 0.03, 'Palm-to-grasp-region distance that still grasps, m.',
          range=(0.001, 0.5)),
    Param('grasp_closure', 0.6, 'Hand closure (0 open .. 1 closed) that grasps.',
          range=(0.0, 1.0)),
    Param('release_closure', 0.3, 'Hand closure below which a held box drops.',
          range=(0.0, 1.0)),
    Param('palm_offset', 0.0, 'Palm point along the wrist +z axis from the wrist, m.',
          range=(-0.3, 0.3)),
    Param('lift_target', 0.10, 'Lift height of a successful pick, m.', range=(0.001, 1.0)),
    Param('task', 'pick up the cup', 'Task text of the reward (the fake world scores lifts).'),
    Param('seed', 0, 'First placement seed; sim/reset with seed -1 continues from it.',
          range=(0, 2**31 - 1)),
    Param('split', 'train', 'Configuration split (placement region and, mujoco, object '
          'instances) when sim/reset leaves it empty.', choices=tuple(SPLITS)),
    Param('object_instances', True, 'mujoco: each configuration (seed, split) has its own object '
          'instance of the task category (size, mass, friction, colour; train and test instances '
          'disjoint); false: the nominal object everywhere, only the placement varies.'),
)


class SimNode(Node):
    """Renders the tabletop and plays the robot's world; stands in for the real one."""

    def __init__(self, **kwargs):
        super().__init__('sim', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            camera = PinholeCamera(self.p.width, self.p.height, self.p.fx, self.p.fy,
                                   self.p.cx, self.p.cy)
            self.hand = load_hand_config(self.p.hand_config)
            camera_to_base = Transform.from_list(self.p.camera_to_base)
            if self.p.backend == 'mujoco':
                self.world = MujocoWorld(camera, camera_to_base, self.hand, MujocoSettings(
                    lift_target=self.p.lift_target, task=self.p.mujoco_task,
                    instances=self.p.object_instances))
            else:
                self.world = TabletopWorld(camera, camera_to_base,
                                           WorldSettings(tuple(self.p.object_size),
                                                         self.p.grasp_tolerance,
                                                         self.p.grasp_closure,
                                                         self.p.release_closure,
                                                         self.p.palm_offset, self.p.lift_target))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.physics = self.p.backend == 'mujoco'
        self.camera = camera
        try:
            self.clock_settings = ClockSettings(
                step=1.0 / self.p.physics_rate_hz, max_peer_lag=self.p.max_peer_lag,
                peer_timeout=self.p.peer_timeout, idle_after=self.p.idle_after,
                max_real_time_factor=self.p.max_real_time_factor,
                rest_frame_after=self.p.rest_frame_after)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.sim_time = bool(self.get_parameter('use_sim_time').value)
        self.owns_clock = self.sim_time  # run_node: no ClockThread (/clock back to itself)
        if self.sim_time:  # this node sets its own clock as it steps: no /clock back to itself
            self._time_source.detach_node()  # rclpy's TimeSource (no public accessor)
        self.lock = threading.Condition()  # the world and the clock; notified by peer states
        self.next_seed = self.p.seed
        self.world.reset(self.next_seed, self.p.split)
        self.next_seed += 1
        self.wrist = None
        self.closure = 0.0
        self.hand_positions = None  # mujoco: the hand's joint angles, config order
        # The simulated clock starts at the wall-clock time of the start (stamps read as dates).
        self.t_ns = time.time_ns()
        self.peers, self.pace = Peers(), Pace()
        self.activity = Activity(self.clock_settings, self.t_ns * 1e-9)
        self.frame_wall = -np.inf  # wall time of the last frame published
        self.last_frame = None  # the messages of the last rendered frame (repeated when idle)
        # a frame to render (after a reset, for viewers): the clock's thread renders every frame
        # (an OpenGL context belongs to the thread that made it)
        self.frame_wanted = True
        self.frame_state = None  # mujoco: the physics state the last render shows
        self.jobs = []  # (callable, done event, result box): run by the clock's thread
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.rgb_pub = self.create_publisher(Image, 'camera/color/image_raw', qos)
        self.depth_pub = self.create_publisher(Image, 'camera/depth/image_raw', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        self.object_pub = self.create_publisher(PoseStamped, 'sim/object_pose', 10)
        self.clock_pub = self.create_publisher(
            ClockMsg, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        # viewers' frames on the wall clock: sim time may run far faster than anyone watches
        self.create_timer(1.0 / self.p.camera_rate_hz, self.viewer_frame,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Keep only the newest wrist pose and hand state: the world follows the robot's present
        # state, and a backlog queued behind a slow render would otherwise still be replayed
        # when sim/reward is asked (the reward would see the robot as it was, not as it is).
        # They come once per clock step: a side lane takes them (their callbacks lock).
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.states = SideLane(self, 'states')
        self.states.subscribe(PoseStamped, 'arm/wrist_pose', self.on_wrist, latest)
        self.states.subscribe(JointState, 'hand/joint_states', self.on_hand, latest)
        self.create_service(ResetSim, 'sim/reset', self.on_reset)
        self.create_service(GetTaskReward, 'sim/reward', self.on_reward)
        self.stopping = threading.Event()
        self.stepper = threading.Thread(target=self.run_clock, name='sim_clock', daemon=True)
        self.stepper.start()
        self.get_logger().info(f'{self.p.backend} world: {self.p.width}x{self.p.height} camera, '
                               f'object at {self.world.object_pose()[0].round(3).tolist()}; '
                               f'clock steps of {self.clock_settings.step * 1e3:.0f} ms, '
                               + ('sim time, fast while the robot acts' if self.sim_time
                                  else 'real time (use_sim_time is false)'))

    def camera_info(self, header: Header) -> CameraInfo:
        """Return the true intrinsics of the rendered camera."""
        p = self.p
        return CameraInfo(header=header, width=p.width, height=p.height,
                          distortion_model='plumb_bob', d=[0.0] * 5,
                          k=[p.fx, 0.0, p.cx, 0.0, p.fy, p.cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[p.fx, 0.0, p.cx, 0.0, 0.0, p.fy, p.cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    # --- the clock -------------------------------------------------------------------
    def run_clock(self) -> None:
        """Step the world and publish /clock until the node stops (the clock's thread)."""
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # a bug: logged, the clock goes on (never a frozen graph)
                internal_error(self.get_logger(), 'the sim clock', exc)
                self.stopping.wait(0.1)

    def tick(self) -> None:
        """Render a wanted frame; then one step of the clock when the peers and the pace allow."""
        s = self.clock_settings
        while self.jobs:
            job, done, box = self.jobs.pop(0)
            try:
                box.append(job())
            except Exception as exc:  # noqa: B902 - handed back to the caller, who answers
                box.append(exc)
            done.set()
        if self.frame_wanted:
            self.frame_wanted = False
            self.publish_frame()
        with self.lock:
            now = self.t_ns * 1e-9
            if self.sim_time:
                wait, _ = self.peers.wait(now + s.step, time.monotonic(), s)
                if wait > 0:  # a peer's next state (or a wanted frame) notifies the lock
                    self.lock.wait(min(wait, 0.05))
                    return
            factor = self.pace.factor(self.activity, now, s) if self.sim_time else 1.0
            due = self.pace.wall_due(now, time.monotonic(), factor)
        if due > time.monotonic() and self.stopping.wait(due - time.monotonic()):
            return
        with self.lock:
            self.advance(s.step)
            self.t_ns += int(round(s.step * 1e9))
            now = self.t_ns * 1e-9
            self.activity.update(self.inputs(), now)
            rest = self.activity.rest_frame_due(now)
            stamp = self.t_ns
        if self.sim_time:
            self.get_clock().set_ros_time_override(Time(nanoseconds=stamp))
        self.clock_pub.publish(ClockMsg(clock=Time(nanoseconds=stamp).to_msg()))
        if rest:
            self.publish_frame()

    def inputs(self):
        """Return the robot's inputs the world follows (wrist pose, hand), None before any."""
        if self.wrist is None:
            return None
        hand = [self.closure] if self.hand_positions is None else list(self.hand_positions)
        return list(self.wrist[0]) + list(self.wrist[1]) + hand

    def advance(self, dt: float) -> None:
        """Advance the world by dt s of sim time toward the latest wrist and hand (locked)."""
        if not self.physics:
            return  # the kinematic world follows the wrist as it comes (_update)
        if self.wrist is None:
            self.world.step(dt)
            return
        hand = self.closure if self.hand_positions is None else self.hand_positions
        self.world.update(self.wrist[0], self.wrist[1], hand, dt=dt)

    def begin_shutdown(self) -> None:
        """Stop the clock's thread (run_node calls this first when the node stops)."""
        self.stopping.set()
        with self.lock:
            self.lock.notify_all()
        if self.stepper is not threading.current_thread():
            self.stepper.join(timeout=5.0)

    def destroy_node(self):
        """Stop the clock and the side lane, then the node."""
        if getattr(self, 'stepper', None) is not None:
            self.begin_shutdown()
        if getattr(self, 'states', None) is not None:
            self.states.close()
        return super().destroy_node()

    # --- frames --------------------------------------------------------------------------
    def viewer_frame(self) -> None:
        """
        Wall-clock timer: a frame for viewers, and for anyone waiting for one, while idle.

        While the robot acts the clock's thread renders the frames that matter (each rest) and
        a render would only hold the clock up. When idle, a frame of an unchanged world is the
        last image with a new stamp (publish_frame renders only when the physics moved).
        """
        if time.monotonic() - self.frame_wall < 0.9 / self.p.camera_rate_hz:
            return
        with self.lock:
            if not self.activity.idle(self.t_ns * 1e-9):
                return
        self.want_frame()

    def on_clock_thread(self, job, timeout: float = 30.0):
        """
        Run `job` on the clock's thread and return its result (or raise its exception).

        The world's OpenGL context belongs to that thread, and a reset may rebuild the world
        (a new object instance), which frees the context.
        """
        done, box = threading.Event(), []
        with self.lock:
            self.jobs.append((job, done, box))
            self.lock.notify_all()
        give_up = time.monotonic() + timeout
        while not done.wait(0.1):
            if self.stopping.is_set() or time.monotonic() > give_up:
                raise RuntimeError('the sim clock thread did not run the request (stopping, '
                                   f'or busy for {timeout} s)')
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def want_frame(self) -> None:
        """Have the clock's thread render a frame next."""
        with self.lock:
            self.frame_wanted = True
            self.lock.notify_all()

    def publish_frame(self) -> None:
        """
        Publish colour, depth and camera info stamped with the sim time (the clock's thread).

        mujoco: rendered only when the physics state (positions) moved since the last render
        (by more than 0.1 mm or mrad: under a pixel); otherwise the same images, stamped now.
        """
        with self.lock:
            stamp = self.t_ns
            position, orientation = self.world.object_pose()
            state = None
            if self.physics:  # renders the live physics state: under the lock
                d = self.world.data
                state = np.concatenate([d.qpos, d.mocap_pos.ravel()])
                if self.last_frame is None or self.frame_state is None or \
                        state.shape != self.frame_state.shape or \
                        float(np.max(np.abs(state - self.frame_state))) > 1e-4:
                    rgb, depth = self.world.render()
                else:
                    rgb, depth = None, None
        if not self.physics:
            rgb, depth = self.world.render((position, orientation))
        header = Header(stamp=Time(nanoseconds=stamp).to_msg(), frame_id=self.p.camera_frame)
        if rgb is None:  # unchanged: the last images, stamped now
            colour, depth_msg = self.last_frame[0], self.last_frame[1]
            colour.header = depth_msg.header = header
        else:
            colour = image_codec.to_msg(rgb, 'rgb8', header)
            depth_msg = image_codec.to_msg(depth, '32FC1', header)
            self.frame_state = state
        frame = (colour, depth_msg, self.camera_info(header))
        for pub, msg in zip((self.rgb_pub, self.depth_pub, self.info_pub), frame):
            pub.publish(msg)
        self.last_frame, self.frame_wall = frame, time.monotonic()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = header.stamp, self.p.base_frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = \
            (float(v) for v in position)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in orientation)
        self.object_pub.publish(pose)

    def _update(self) -> None:
        if self.physics:
            return  # targets only: advance() steps the physics
        if self.wrist is not None:
            self.world.update(self.wrist[0], self.wrist[1], self.closure)

    def on_wrist(self, msg: PoseStamped) -> None:
        """Follow the arm's wrist."""
        p, o = msg.pose.position, msg.pose.orientation
        with self.lock:
            self.heard('arm', msg.header.stamp)
            self.wrist = ([p.x, p.y, p.z], [o.x, o.y, o.z, o.w])
            try:
                self._update()
            except ValueError as exc:
                self.get_logger().warning(f'bad wrist pose ignored: {exc}',
                                          throttle_duration_sec=5.0)

    def heard(self, peer: str, stamp) -> None:
        """Note a peer's state stamp for the lockstep and wake the clock (locked)."""
        self.peers.heard(peer, Time.from_msg(stamp).nanoseconds * 1e-9, time.monotonic())
        self.lock.notify_all()

    def on_hand(self, msg: JointState) -> None:
        """Follow the hand's closure."""
        try:
            positions, _ = self.hand.resolve(list(msg.name), list(msg.position))
        except ValueError as exc:
            self.get_logger().warning(f'hand/joint_states ignored: {exc}',
                                      throttle_duration_sec=5.0)
            return
        with self.lock:
            self.heard('hand', msg.header.stamp)
            self.closure = self.hand.closure(positions)
            self.hand_positions = positions
            self._update()

    def on_reset(self, request, response):
        """Place the object anew (seed -1: the next seed of the node's stream)."""
        try:
            return self.reset(request, response)
        except Exception as exc:  # a bug: an answer, never a dead node
            response.success = False
            response.message = internal_error(self.get_logger(), 'sim/reset', exc)
            return response

    def reset(self, request, response):
        """Fill the answer of sim/reset (see on_reset)."""
        split = request.split or self.p.split
        seed = self.next_seed if request.seed < 0 else request.seed
        return self.on_clock_thread(lambda: self._reset(request, response, seed, split))

    def _reset(self, request, response, seed: int, split: str):
        """Reset the world (on the clock's thread) and fill the answer."""
        with self.lock:
            try:
                self.world.reset(seed, split)
                self.wrist = None  # the hand starts at home; the next wrist pose moves it
            except ValueError as exc:
                response.success, response.message = False, str(exc)
                return response
            position, orientation = self.world.object_pose()
            # 1 ns on: a frame of the scene before shares no stamp with the new scene's frames
            self.t_ns += 1
            self.activity.reset()
            response.stamp = Time(nanoseconds=self.t_ns).to_msg()
        if request.seed < 0:
            self.next_seed += 1
        response.success, response.seed = True, seed
        instance = getattr(self.world, 'instance', None)
        response.message = f'object placed ({split}, seed {seed}' + (
            f', instance {instance.name})' if instance is not None else ')')
        pose = response.object_pose
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = \
            (float(v) for v in orientation)
        self.frame_wanted = True  # rendered next by this thread, stamped >= response.stamp
        return response

    def on_reward(self, request, response):
        """Score the current state of the scene."""
        try:
            with self.lock:
                reward, success = self.world.task_reward()
        except Exception as exc:  # a bug: an answer, never a dead node
            response.success = False
            response.message = internal_error(self.get_logger(), 'sim/reward', exc)
            return response
        # plain Python types: the C message conversion asserts on numpy scalars (and aborts)
        response.success, response.reward, response.task_success = True, float(reward), \
            bool(success)
        response.message = (f'{self.p.task}: ' + ('success' if success else
                                                  'held' if bool(self.world.held) else
                                                  'not held'))
        return response


def main(args=None):
    """Run the simulated world node."""
    # one thread: no callback waits on another
    raise SystemExit(run_node(SimNode, args, threads=1, params=PARAMS))
