"""The perception node: `perception/segment` over the latest RGB-D frame."""

from collections import deque
import threading
import time

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest

from deft_common import image_codec
from deft_common.node_main import ConfigurationError, internal_error, run_node
from deft_common.ros_params import Param, declare
from deft_common.torch_threads import (
    DEFAULT_THREADS,
    DEFAULT_WAIT_POLICY,
    WAIT_POLICIES,
    configure_torch_threads,
)
from deft_interfaces.srv import Segment
from deft_perception.geometry import (
    CameraInfoError,
    CameraModel,
    crop_resize,
    crop_window,
    mask_box,
)
from deft_perception.prompts import parse_prompt
from deft_perception.segmentation import (
    BACKENDS,
    TORCH_BACKENDS,
    SegmentationError,
    make_segmenter,
)

S = Segment.Response
PARAMS = (
    Param('backend', 'fake', 'Segmentation backend: fake (honest dry run: a centre region of the '
          'image, which it does not look at), depth (support-plane fit and clustering of the '
          'depth image, no weights), sam (segment-anything from sam_checkpoint, tens of seconds '
          'per frame on a CPU) or mobile_sam (MobileSAM from mobile_sam_checkpoint, under 1 s per '
          'frame on two CPU cores at 512 px); with sam and mobile_sam label prompts are ranked '
          'by CLIP (clip_model, clip_weights).', choices=BACKENDS),
    Param('crop_size', 224, 'Side of the square crop for the model, px.', range=(8, 2048)),
    Param('crop_margin', 0.15, 'Margin around the box in the crop, fraction of its side.',
          range=(0.0, 2.0)),
    Param('center_fraction', 0.3, 'fake: fraction of each image side the mask covers.',
          range=(0.01, 1.0)),
    Param('min_height', 0.01, 'depth: height above the support plane of an object, m.',
          range=(0.0, 1.0)),
    Param('max_height', 0.25, 'depth: height above the support plane where objects end (the '
          'robot above the table is not one), m.', range=(0.001, 5.0)),
    Param('min_area', 150, 'depth: smallest object, px.', range=(1, 10_000_000)),
    Param('ransac_iterations', 200, 'depth: RANSAC iterations of the plane fit.',
          range=(1, 100_000)),
    Param('plane_inlier_distance', 0.01, 'depth: plane inlier distance, m.', range=(0.0001, 0.5)),
    Param('max_sync_skew', 0.2, 'Largest stamp difference of colour and depth, s.',
          range=(0.0, 10.0)),
    Param('frame_timeout', 5.0, 'How long a segment request waits for colour, depth and camera '
          'info (the first after start-up, or the first stamped at or after its not_before), s '
          '(0: answer NO_IMAGE at once).', range=(0.0, 120.0)),
    Param('sync_queue', 5, 'Colour and depth frames kept to pair them by stamp.',
          range=(1, 100)),
    Param('seed', 0, 'Seed of the RANSAC sampling.', range=(0, 2**31 - 1)),
    Param('sam_model_type', 'vit_b', 'sam: Segment Anything image encoder size (vit_b: 94M '
          'parameters, vit_h: 636M).', choices=('vit_b', 'vit_l', 'vit_h')),
    Param('sam_checkpoint', '', 'sam: path of the SAM state dict of sam_model_type (loaded with '
          'weights_only; nothing is downloaded).'),
    Param('mobile_sam_checkpoint', '', 'mobile_sam: path of the MobileSAM state dict (e.g. the '
          "authors' mobile_sam.pt; loaded with weights_only, nothing is downloaded)."),
    Param('mobile_sam_input_size', 512, 'mobile_sam: longest image side the TinyViT encoder sees, '
          'px, a multiple of 16 (the weights are trained at 1024: finer masks, about 2.6 s per '
          'frame on two CPU cores; 512: about 0.5 s).', range=(64, 1024)),
    Param('sam_allow_random', False, 'sam, mobile_sam: run randomly initialised when the '
          'checkpoint is empty (dry runs and tests only: the masks are meaningless).'),
    Param('device', 'cpu', 'sam, mobile_sam: torch device of the models (cpu, cuda, cuda:1, '
          '...).'),
    Param('clip_model', '', 'sam, mobile_sam: open_clip model name of the ranker of label prompts '
          '(e.g. ViT-B-32); empty: label prompts are refused.'),
    Param('clip_weights', '', 'sam, mobile_sam: path of the open_clip state dict of clip_model.'),
    Param('torch_threads', DEFAULT_THREADS, 'sam, mobile_sam: torch intra-op CPU threads (0: one '
          'per core). One holds its latency when other processes load the cores; more spin and '
          'fight them.', range=(0, 256)),
    Param('omp_wait_policy', DEFAULT_WAIT_POLICY, 'sam, mobile_sam: OMP_WAIT_POLICY of the '
          'process, set before torch loads (PASSIVE: idle OpenMP threads sleep instead of '
          'spinning; empty: as the environment sets it).', choices=WAIT_POLICIES),
    Param('reuse_answer', True, 'Answer a request for the frame, prompt and crop size of the '
          'previous answer (same colour and depth stamps) with that answer instead of '
          'segmenting again: an episode segments the frame it perceived once more to predict '
          'its grasp (with sam, seconds saved per episode).'),
    Param('image_qos', 'reliable', 'Reliability of the camera subscriptions: reliable (large '
          'images arrive whole) or best_effort (for drivers that only publish best effort).',
          choices=('reliable', 'best_effort')),
)


class PerceptionNode(Node):
    """Keeps the latest colour, depth and camera info; segments on request."""

    def __init__(self, **kwargs):
        super().__init__('perception', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            if self.p.backend in TORCH_BACKENDS:  # before the backend imports torch
                threads = configure_torch_threads(self.p.torch_threads, self.p.omp_wait_policy)
                self.get_logger().info(threads.describe())
                if threads.note:
                    self.get_logger().warning(threads.note)
            self.segmenter = make_segmenter(
                self.p.backend, center_fraction=self.p.center_fraction,
                min_height=self.p.min_height, max_height=self.p.max_height,
                min_area=self.p.min_area,
                iterations=self.p.ransac_iterations,
                inlier_distance=self.p.plane_inlier_distance, seed=self.p.seed,
                sam_model_type=self.p.sam_model_type, sam_checkpoint=self.p.sam_checkpoint,
                mobile_sam_checkpoint=self.p.mobile_sam_checkpoint,
                mobile_sam_input_size=self.p.mobile_sam_input_size,
                sam_allow_random=self.p.sam_allow_random, device=self.p.device,
                clip_model=self.p.clip_model, clip_weights=self.p.clip_weights)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.lock = threading.Condition()
        self.recent = {'colour': deque(maxlen=self.p.sync_queue),
                       'depth': deque(maxlen=self.p.sync_queue)}
        self.latest = {'info': None}
        self.last_answer = None  # (frame, prompt, crop size), the answer's fields
        self.reused = 0  # answers given again (reuse_answer)
        group = ReentrantCallbackGroup()
        qos = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if self.p.image_qos == 'reliable'
                         else ReliabilityPolicy.BEST_EFFORT)
        for key, msg_type, topic in (('colour', Image, 'camera/color/image_raw'),
                                     ('depth', Image, 'camera/depth/image_raw'),
                                     ('info', CameraInfo, 'camera/color/camera_info')):
            self.create_subscription(msg_type, topic, lambda m, k=key: self.keep(k, m),
                                     qos, callback_group=group)
        self.create_service(Segment, 'perception/segment', self.on_segment, callback_group=group)
        built = getattr(self.segmenter, 'build_seconds', None)
        self.get_logger().info(f'segmentation backend {self.p.backend!r}'
                               + (f' built in {built:.1f} s' if built is not None else ''))

    def keep(self, key, msg) -> None:
        """Store a camera message: the last few colour and depth frames, the latest info."""
        with self.lock:
            if key == 'info':
                self.latest['info'] = msg
            else:
                self.recent[key].append(msg)
            self.lock.notify_all()

    def synced_frame(self, not_before: int = 0):
        """
        Return (colour, depth, info, skew) of the newest frame whose colour and depth match.

        The newest colour frame with the depth frame closest to it in time: colour and depth
        travel as separate messages, so the newest of each may belong to different frames.
        Only frames stamped at or after `not_before` (ns; 0: any) count: a colour frame of the
        new scene must not be paired with a depth frame of the old one. Call with the lock held.
        """
        colours = [m for m in self.recent['colour'] if _stamp_ns(m) >= not_before]
        depths = [m for m in self.recent['depth'] if _stamp_ns(m) >= not_before]
        info = self.latest['info']
        if not colours or not depths:
            return (colours[-1] if colours else None), (depths[-1] if depths else None), info, 0.0
        best = None
        for colour in reversed(colours):
            t = _stamp_ns(colour)
            depth = min(depths, key=lambda d: abs(_stamp_ns(d) - t))
            skew = abs(_stamp_ns(depth) - t) * 1e-9
            if best is None or skew < best[3] - 1e-9:
                best = (colour, depth, info, skew)
            if skew <= self.p.max_sync_skew:
                return colour, depth, info, skew
        return best

    def _frame_ready(self, not_before: int = 0) -> bool:
        colour, depth, info, skew = self.synced_frame(not_before)
        return colour is not None and depth is not None and info is not None \
            and skew <= self.p.max_sync_skew

    def on_segment(self, request, response):
        """Segment the latest frame; every failure is an error code and a message."""
        t0 = time.monotonic()
        try:
            self.segment(request, response)
            response.success = True
        except _Failure as exc:
            response.success, response.error_code, response.error_msg = False, exc.code, str(exc)
            self.get_logger().warning(f'segment {request.prompt!r}: {exc}')
        except Exception as exc:  # a bug or an input nobody foresaw: an answer, never a dead node
            response.success, response.error_code = False, S.BACKEND_ERROR
            response.error_msg = internal_error(self.get_logger(), 'perception/segment', exc)
        timing = getattr(self.segmenter, 'last_timing', None)
        self.get_logger().debug(f'segment took {time.monotonic() - t0:.3f} s'
                                + (f' ({timing})' if timing else ''))
        return response

    def segment(self, request, response) -> None:
        """Fill the response or raise _Failure."""
        if request.crop_size and not 8 <= request.crop_size <= 2048:
            raise _Failure(S.BAD_PROMPT, f'crop_size {request.crop_size} is outside 8..2048 '
                           'pixels (0 = the crop_size parameter)')
        not_before = Time.from_msg(request.not_before).nanoseconds
        with self.lock:
            # Right after start-up (or a scene reset, with not_before) the camera may not have
            # published yet: wait (the subscriptions run on other executor threads), up to
            # frame_timeout.
            self.lock.wait_for(lambda: self._frame_ready(not_before),
                               timeout=self.p.frame_timeout)
            colour, depth_msg, info, skew = self.synced_frame(not_before)
            newest = max((_stamp_ns(m) for q in self.recent.values() for m in q), default=None)
        missing = [t for t, m in (('camera/color/image_raw', colour),
                                  ('camera/depth/image_raw', depth_msg),
                                  ('camera/color/camera_info', info)) if m is None]
        if missing and not_before and newest is not None and info is not None:
            late = '' if newest >= not_before else \
                f' (the newest frame is {(not_before - newest) * 1e-9:.3f} s older)'
            raise _Failure(S.NO_IMAGE, f'nothing on {", ".join(missing)} stamped at or after '
                           f'not_before within frame_timeout {self.p.frame_timeout} s{late}: is '
                           'the camera still publishing, and does its clock agree with the '
                           "caller's?")
        if missing:
            raise _Failure(S.NO_IMAGE, f'nothing received on {", ".join(missing)} within '
                           f'frame_timeout {self.p.frame_timeout} s: is the camera running and '
                           'are the topics remapped?')
        if skew > self.p.max_sync_skew:
            raise _Failure(S.NO_IMAGE, f'colour and depth are {skew:.3f} s apart '
                           f'(max_sync_skew {self.p.max_sync_skew} s)')
        size = request.crop_size or self.p.crop_size
        key = (_stamp_ns(colour), _stamp_ns(depth_msg), request.prompt, size)
        last = self.last_answer  # the frame answered last: nothing to decode again
        if self.p.reuse_answer and last is not None and last[0] == key:
            for name, value in last[1].items():
                setattr(response, name, value)
            self.reused += 1
            return
        try:
            rgb = image_codec.to_rgb(colour)
            depth = image_codec.depth_in_metres(depth_msg)
        except ValueError as exc:
            raise _Failure(S.NO_IMAGE, f'unusable camera data: {exc}') from exc
        try:
            camera = CameraModel.from_camera_info(info.k, info.width, info.height, rgb.shape[:2])
        except CameraInfoError as exc:
            raise _Failure(S.BAD_CAMERA_INFO, str(exc)) from exc
        if rgb.shape[:2] != depth.shape:
            raise _Failure(S.NO_IMAGE, f'colour {rgb.shape[:2]} and depth {depth.shape} differ '
                           'in size (align depth to colour)')
        h, w = depth.shape
        try:
            prompt = parse_prompt(request.prompt, w, h)
        except ValueError as exc:
            raise _Failure(S.BAD_PROMPT, f'bad prompt: {exc}') from exc
        try:
            mask = self.segmenter.segment(rgb, depth, camera, prompt)
        except SegmentationError as exc:
            raise _Failure(S.NOT_FOUND, str(exc)) from exc
        except (ValueError, RuntimeError) as exc:
            raise _Failure(S.BACKEND_ERROR, f'{self.p.backend} backend: {exc}') from exc
        if not mask.any():
            raise _Failure(S.NOT_FOUND, 'the mask is empty')
        points, valid = camera.backproject(mask, depth)
        if len(points) == 0:
            raise _Failure(S.NO_VALID_DEPTH, 'the object has no valid depth (all NaN, zero or '
                           'negative): check the depth stream and the object distance')
        u0, v0, u1, v1 = mask_box(mask)
        window = crop_window((u0, v0, u1, v1), self.p.crop_margin, w, h)
        response.header = colour.header
        response.mask = image_codec.to_msg(mask.astype(np.uint8) * 255, 'mono8', colour.header)
        response.box = RegionOfInterest(x_offset=u0, y_offset=v0, width=u1 - u0,
                                        height=v1 - v0)
        response.crop = image_codec.to_msg(crop_resize(rgb, window, size), 'rgb8', colour.header)
        response.crop_window = RegionOfInterest(x_offset=window[0], y_offset=window[1],
                                                width=window[2], height=window[2])
        response.points = points.ravel().tolist()
        c = points.mean(axis=0)
        response.centroid.x, response.centroid.y, response.centroid.z = (float(v) for v in c)
        response.depth_valid_fraction = valid
        self.last_answer = (key, {name: getattr(response, name) for name in ANSWER_FIELDS})


ANSWER_FIELDS = ('header', 'mask', 'box', 'crop', 'crop_window', 'points', 'centroid',
                 'depth_valid_fraction')


def _stamp_ns(msg) -> int:
    return Time.from_msg(msg.header.stamp).nanoseconds


class _Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def main(args=None):
    """Run the perception node."""
    raise SystemExit(run_node(PerceptionNode, args, params=PARAMS))
