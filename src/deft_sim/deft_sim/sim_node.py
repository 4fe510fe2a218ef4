"""The simulated world node: camera topics, `sim/reset`, `sim/reward`, fed by the arm and hand."""

import threading

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header

from deft_common import image_codec
from deft_common.node_main import ConfigurationError, internal_error, run_node
from deft_common.ros_params import Param, declare
from deft_common.rotations import Transform
from deft_hand_driver.hand_config import load_hand_config
from deft_interfaces.srv import GetTaskReward, ResetSim
from deft_sim.kinematic_world import SPLITS, PinholeCamera, TabletopWorld, WorldSettings
from deft_sim.mujoco_world import TASKS, MujocoSettings, MujocoWorld

PARAMS = (
    Param('backend', 'mujoco', 'World backend: fake (kinematic tabletop, no physics, a box that '
          'sticks to a closed hand) or mujoco (physics: contact and friction hold the cup).',
          choices=('fake', 'mujoco')),
    Param('mujoco_task', 'pick_cup', 'mujoco: task scored by sim/reward.', choices=TASKS),
    Param('physics_rate_hz', 100.0, 'mujoco: rate the physics is advanced at (real time), Hz.',
          range=(10.0, 1000.0)),
    Param('base_frame', 'base_link', 'Frame of the world (REP 105).'),
    Param('camera_frame', 'camera_color_optical_frame', 'Optical frame of the camera (REP 103).'),
    Param('camera_to_base', [0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0],
          'Camera optical frame pose in base_frame: x y z (m) qx qy qz qw.'),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('camera_rate_hz', 2.0, 'Rate of rendered RGB-D frames, Hz.', range=(0.1, 60.0)),
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
        self.lock = threading.Lock()
        self.next_seed = self.p.seed
        self.world.reset(self.next_seed, self.p.split)
        self.next_seed += 1
        self.wrist = None
        self.closure = 0.0
        self.hand_positions = None  # mujoco: the hand's joint angles, config order
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.rgb_pub = self.create_publisher(Image, 'camera/color/image_raw', qos)
        self.depth_pub = self.create_publisher(Image, 'camera/depth/image_raw', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/color/camera_info', qos)
        self.object_pub = self.create_publisher(PoseStamped, 'sim/object_pose', 10)
        self.create_timer(1.0 / self.p.camera_rate_hz, self.publish_frame)
        if self.physics:  # physics runs in real time whether or not the robot moves
            self.create_timer(1.0 / self.p.physics_rate_hz, self.advance)
        group = None
        # Keep only the newest wrist pose and hand state: the world follows the robot's present
        # state, and a backlog queued behind a slow render would otherwise still be replayed
        # when sim/reward is asked (the reward would see the robot as it was, not as it is).
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(PoseStamped, 'arm/wrist_pose', self.on_wrist, latest,
                                 callback_group=group)
        self.create_subscription(JointState, 'hand/joint_states', self.on_hand, latest,
                                 callback_group=group)
        self.create_service(ResetSim, 'sim/reset', self.on_reset, callback_group=group)
        self.create_service(GetTaskReward, 'sim/reward', self.on_reward, callback_group=group)
        self.get_logger().info(f'{self.p.backend} world: {self.p.width}x{self.p.height} camera at '
                               f'{self.p.camera_rate_hz} Hz, object at '
                               f'{self.world.object_pose()[0].round(3).tolist()}')

    def camera_info(self, header: Header) -> CameraInfo:
        """Return the true intrinsics of the rendered camera."""
        p = self.p
        return CameraInfo(header=header, width=p.width, height=p.height,
                          distortion_model='plumb_bob', d=[0.0] * 5,
                          k=[p.fx, 0.0, p.cx, 0.0, p.fy, p.cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[p.fx, 0.0, p.cx, 0.0, 0.0, p.fy, p.cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def publish_frame(self) -> None:
        """Render and publish colour, depth and camera info with one stamp."""
        with self.lock:
            position, orientation = self.world.object_pose()
            if self.physics:  # renders the live physics state: under the lock
                rgb, depth = self.world.render()
        if not self.physics:
            rgb, depth = self.world.render((position, orientation))
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p.camera_frame)
        self.rgb_pub.publish(image_codec.to_msg(rgb, 'rgb8', header))
        self.depth_pub.publish(image_codec.to_msg(depth, '32FC1', header))
        self.info_pub.publish(self.camera_info(header))
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

    def advance(self) -> None:
        """mujoco: step the physics to now, toward the latest wrist and hand targets."""
        with self.lock:
            if self.wrist is None:
                self.world.step(1.0 / self.p.physics_rate_hz)
                return
            hand = self.closure if self.hand_positions is None else self.hand_positions
            self.world.update(self.wrist[0], self.wrist[1], hand)

    def on_wrist(self, msg: PoseStamped) -> None:
        """Follow the arm's wrist."""
        p, o = msg.pose.position, msg.pose.orientation
        with self.lock:
            self.wrist = ([p.x, p.y, p.z], [o.x, o.y, o.z, o.w])
            try:
                self._update()
            except ValueError as exc:
                self.get_logger().warning(f'bad wrist pose ignored: {exc}',
                                          throttle_duration_sec=5.0)

    def on_hand(self, msg: JointState) -> None:
        """Follow the hand's closure."""
        try:
            positions, _ = self.hand.resolve(list(msg.name), list(msg.position))
        except ValueError as exc:
            self.get_logger().warning(f'hand/joint_states ignored: {exc}',
                                      throttle_duration_sec=5.0)
            return
        with self.lock:
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
        with self.lock:
            try:
                self.world.reset(seed, split)
                self.wrist = None  # the hand starts at home; the next wrist pose moves it
            except ValueError as exc:
                response.success, response.message = False, str(exc)
                return response
            position, orientation = self.world.object_pose()
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
        self.publish_frame()
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
