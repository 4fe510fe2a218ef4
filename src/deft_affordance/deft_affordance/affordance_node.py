"""The affordance node: `affordance/predict` = segment the object, predict the grasp prior."""

import time

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image

from deft_affordance.geometric_prior import geometric_prior
from deft_affordance.heuristic_prior import heuristic_prior
from deft_affordance.lifting import ModelGrasp, model_grasp
from deft_affordance.prior_view import draw_prior_view
from deft_common import image_codec
from deft_common.image_codec import LatestFrame
from deft_common.node_main import ConfigurationError, internal_error, run_node
from deft_common.ros_async import wait_for, wait_until
from deft_common.ros_params import Param, declare
from deft_common.rotations import Transform
from deft_common.torch_threads import (
    DEFAULT_THREADS,
    DEFAULT_WAIT_POLICY,
    WAIT_POLICIES,
    configure_torch_threads,
)
from deft_hand_driver.hand_config import default_config_path, load_hand_config
from deft_interfaces.srv import PredictGrasp, Segment
from deft_perception.geometry import CameraInfoError, check_camera_info

P = PredictGrasp.Response
METHODS = ('affordance', 'heuristic')
PARAMS = (
    Param('backend', 'fake', 'Affordance backend: fake (geometric prior, no model) or model (the '
          'learned f(crop, task): contact heatmaps, wrist rotation, MANO pose).',
          choices=('fake', 'model')),
    Param('checkpoint', '', 'model: affordance checkpoint (deft_train_affordance).'),
    Param('clip_weights', '', 'model: CLIP text tower weights if moved since training '
          '(empty = the path stored in the checkpoint).'),
    Param('device', 'cpu', 'model: torch device.'),
    Param('allow_random', False, 'model: accept randomly initialised parts (dry runs only).'),
    Param('torch_threads', DEFAULT_THREADS, 'model: torch intra-op CPU threads (0: one per core). '
          'One holds its latency when other processes load the cores; more spin and fight them.',
          range=(0, 256)),
    Param('omp_wait_policy', DEFAULT_WAIT_POLICY, 'model: OMP_WAIT_POLICY of the process, set '
          'before torch loads (PASSIVE: idle OpenMP threads sleep instead of spinning; empty: as '
          'the environment sets it).', choices=WAIT_POLICIES),
    Param('retargeting_config', 'leap_16dof_retargeting.yaml', 'model: MANO -> robot hand '
          "retargeting YAML; a bare file name is looked up in deft_hand_driver's config."),
    Param('mano_model_path', '', 'model: converted MANO model file (.npz, see the README) for '
          'the retargeting; empty = the documented kinematic approximation of a right hand.'),
    Param('max_lift_distance_px', 25.0, 'model: farthest object pixel from the predicted '
          'contact that it may be lifted to, px.', range=(1.0, 1000.0)),
    Param('base_frame', 'base_link', 'Frame of the predicted grasp.'),
    Param('camera_to_base', [0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0],
          'Camera optical frame pose in base_frame: x y z (m) qx qy qz qw.'),
    Param('hand_config', '', 'Hand config YAML; empty = the installed LEAP-class 16-DOF hand.'),
    Param('grasp_pose_name', 'closed', 'fake: named hand pose of the grasp.'),
    Param('top_band', 0.02, 'fake: depth of the top surface the contact is taken from, m.',
          range=(0.001, 0.5)),
    Param('wrist_yaw', 0.0, 'fake: turn of the top-down wrist about the vertical, rad.',
          range=(-3.1416, 3.1416)),
    Param('heuristic_pose_name', 'half', 'heuristic baseline: named hand pose (half-closed).'),
    Param('segment_service', 'perception/segment', 'Segmentation service to call.'),
    Param('segment_timeout', 5.0, 'Seconds for segmentation to answer.', range=(0.1, 600.0)),
    Param('publish_view', True, 'Publish each prediction drawn on the camera image (the object '
          'tinted, the contacts ringed, the approach arrow) on affordance/prior_view, latched.'),
)
VIEW_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class AffordanceNode(Node):
    """Predicts the grasp prior of the object named by a prompt, for a task."""

    def __init__(self, **kwargs):
        super().__init__('affordance', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            self.camera_to_base = Transform.from_list(self.p.camera_to_base)
            self.hand = load_hand_config(self.p.hand_config)
            self.hand_pose = self.hand.pose(self.p.grasp_pose_name)
            self.half_pose = self.hand.pose(self.p.heuristic_pose_name)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.model = self.retargeter = None
        self.camera_info, self.color = LatestFrame(), LatestFrame()
        if self.p.backend == 'model':
            self.load_model()
        if self.p.backend == 'model' or self.p.publish_view:
            self.create_subscription(CameraInfo, 'camera/color/camera_info',
                                     self.camera_info.keep, 2)
        self.view = None
        if self.p.publish_view:
            self.create_subscription(Image, 'camera/color/image_raw', self.color.keep, 2)
            self.view = self.create_publisher(Image, 'affordance/prior_view', VIEW_QOS)
        self.group = ReentrantCallbackGroup()
        self.segment = self.create_client(Segment, self.p.segment_service,
                                          callback_group=self.group)
        self.create_service(PredictGrasp, 'affordance/predict', self.on_predict,
                            callback_group=self.group)
        self.get_logger().info(f'affordance backend {self.p.backend!r}')

    def load_model(self) -> None:
        """Load the affordance model and the retargeting; ConfigurationError saying why not."""
        try:  # before anything imports torch: OpenMP reads its wait policy when torch loads
            threads = configure_torch_threads(self.p.torch_threads, self.p.omp_wait_policy)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.get_logger().info(threads.describe())
        if threads.note:
            self.get_logger().warning(threads.note)
        from deft_affordance.model import AffordanceModel  # torch: only for this backend
        from deft_hand_driver.mano import model_from_parameter
        from deft_hand_driver.retargeting import build_retargeter
        from deft_hand_driver.retargeting_config import load_retargeting_config
        if not self.p.checkpoint:
            raise ConfigurationError('backend model needs the parameter checkpoint '
                                     '(train one with deft_train_affordance)')
        t0 = time.monotonic()
        try:
            self.model = AffordanceModel.load(self.p.checkpoint, self.p.clip_weights or None,
                                              self.p.device, self.p.allow_random)
            path = self.p.retargeting_config
            if path and '/' not in path:
                path = str(default_config_path().parent / path)
            hand, config = load_retargeting_config(path)
            self.retargeter = build_retargeter(hand, config,
                                               model_from_parameter(self.p.mano_model_path))
        except (ValueError, OSError) as exc:
            raise ConfigurationError(str(exc)) from exc
        missing = set(self.hand.joint_names) - set(hand.joint_names)
        if missing:
            raise ConfigurationError(f'retargeting_config lacks the hand joints {sorted(missing)}')
        loaded = time.monotonic() - t0
        warm = self.warm_up()
        self.get_logger().info(f'affordance model {self.p.checkpoint} loaded in {loaded:.1f} s; '
                               f'warm-up: first call {warm[0] * 1000:.0f} ms, then '
                               f'{warm[1] * 1000:.0f} ms per call')

    def warm_up(self, task: str = 'pick up the object') -> tuple:
        """
        Run the model twice on a blank crop, so the first request does not pay for lazy set-up.

        Return the (first, second) call times in seconds: the second is what a request costs.
        """
        size = self.model.config.image_size
        crop = np.full((size, size, 3), 127, np.uint8)
        times = []
        for _ in range(2):
            t0 = time.monotonic()
            self.model.predict(crop, task)
            self.retargeter.reset()
            self.retargeter.retarget(np.zeros(45), np.zeros(3))
            times.append(time.monotonic() - t0)
        return tuple(times)

    def model_grasp(self, seg, task: str) -> ModelGrasp:
        """Run f(crop, task) and lift it: contact in 3D, wrist in the base frame, joints."""
        crop = image_codec.to_rgb(seg.crop)
        pred = self.model.predict(crop, task)
        window = (seg.crop_window.x_offset, seg.crop_window.y_offset, seg.crop_window.width)
        info = self.camera_info.msg()
        if info is None:
            raise ValueError('no camera_info received: cannot lift the contact to 3D')
        check_camera_info(info.k, info.width, info.height, (seg.mask.height, seg.mask.width))
        return model_grasp(pred, crop.shape[1], window, np.asarray(seg.points).reshape(-1, 3),
                           info.k, self.camera_to_base, self.retargeter, self.hand.joint_names,
                           self.p.max_lift_distance_px)

    def publish_view(self, seg, prior) -> None:
        """Publish the prior drawn on the newest colour frame (skipped, once logged, if none)."""
        info, frame = self.camera_info.msg(), self.color.msg()
        if info is None or frame is None:
            self.get_logger().warning('no colour frame or camera_info yet: no prior view',
                                      once=True)
            return
        try:
            rgb = image_codec.to_rgb(frame)
            drawn = draw_prior_view(
                rgb, image_codec.to_array(seg.mask), prior.contact_pixels,
                [prior.contact_point.x, prior.contact_point.y, prior.contact_point.z],
                [prior.wrist_orientation.x, prior.wrist_orientation.y,
                 prior.wrist_orientation.z, prior.wrist_orientation.w],
                self.camera_to_base, info.k)
        except ValueError as exc:  # e.g. the mask of another image size than the frame
            self.get_logger().warning(f'no prior view: {exc}', throttle_duration_sec=30.0)
            return
        self.view.publish(image_codec.to_msg(drawn, 'rgb8', frame.header))

    async def on_predict(self, request, response):
        """Segment, lift to the base frame, predict; errors as codes and messages."""
        try:
            return await self.predict(request, response)
        except Exception as exc:  # a bug or an input nobody foresaw: an answer, never a dead node
            response.success, response.error_code = False, P.BACKEND_ERROR
            response.error_msg = internal_error(self.get_logger(), 'affordance/predict', exc)
            return response

    async def predict(self, request, response):
        """Fill the response of affordance/predict (see on_predict)."""
        t0 = time.monotonic()
        if not request.task.strip():
            response.error_code, response.error_msg = P.BAD_REQUEST, 'task is empty'
            return response
        method = request.method or 'affordance'
        if method not in METHODS:
            response.error_code = P.BAD_REQUEST
            response.error_msg = f'method {method!r} is not one of {", ".join(METHODS)}'
            return response
        if not await wait_until(self, self.segment.service_is_ready, self.p.segment_timeout,
                                self.group):
            response.error_code = P.SERVICE_UNAVAILABLE
            response.error_msg = f'service {self.segment.srv_name} is not available'
            return response
        done, seg = await wait_for(self, self.segment.call_async(
            Segment.Request(prompt=request.object_prompt, not_before=request.not_before)),
            self.p.segment_timeout, self.group)
        if not done:
            response.error_code = P.SERVICE_UNAVAILABLE
            response.error_msg = (f'{self.segment.srv_name} did not answer within '
                                  f'{self.p.segment_timeout} s')
            return response
        if not seg.success:
            response.error_code, response.error_msg = P.SEGMENTATION_FAILED, seg.error_msg
            return response
        points = self.camera_to_base.apply(np.asarray(seg.points, dtype=float).reshape(-1, 3))
        try:
            if method == 'heuristic':
                rng = np.random.default_rng(None if request.seed < 0 else request.seed)
                grasp = heuristic_prior(points, self.hand.joint_names, self.half_pose, rng)
            elif self.model is not None:
                if not await wait_until(self, lambda: self.camera_info.msg() is not None,
                                        self.p.segment_timeout, self.group):
                    raise ValueError('no camera_info received within segment_timeout: cannot '
                                     'lift the contact to 3D')
                grasp = self.model_grasp(seg, request.task)
            else:
                grasp = geometric_prior(points, self.hand.joint_names, self.hand_pose,
                                        self.p.top_band, self.p.wrist_yaw)
        except CameraInfoError as exc:
            response.error_code, response.error_msg = P.BAD_CAMERA_INFO, str(exc)
            return response
        except ValueError as exc:
            response.error_code, response.error_msg = P.BACKEND_ERROR, str(exc)
            return response
        prior = response.prior
        prior.header.stamp, prior.header.frame_id = seg.header.stamp, self.p.base_frame
        prior.contact_point.x, prior.contact_point.y, prior.contact_point.z = \
            (float(v) for v in grasp.contact_point)
        q = prior.wrist_orientation
        q.x, q.y, q.z, q.w = (float(v) for v in grasp.wrist_orientation)
        prior.contact_pixels = [seg.box.x_offset + seg.box.width / 2.0,
                                seg.box.y_offset + seg.box.height / 2.0]
        if hasattr(grasp, 'pixels'):  # the model's contacts, and its MANO pose
            prior.contact_pixels = [float(v) for v in grasp.pixels]
            prior.hand_pose = [float(v) for v in grasp.hand_pose]
        prior.hand_joint_names = grasp.hand_joint_names
        prior.hand_joint_positions = grasp.hand_joint_positions.tolist()
        prior.source = 'heuristic' if method == 'heuristic' else self.p.backend
        response.success, response.latency = True, time.monotonic() - t0
        if self.view is not None:
            self.publish_view(seg, prior)
        self.get_logger().info(f'{prior.source} prior for "{request.task}": contact '
                               f'{np.round(grasp.contact_point, 3).tolist()} in '
                               f'{response.latency * 1000:.0f} ms')
        return response


def main(args=None):
    """Run the affordance node."""
    # Every callback is a coroutine that awaits, never blocks: one thread serves them all.
    raise SystemExit(run_node(AffordanceNode, args, threads=1, params=PARAMS))
