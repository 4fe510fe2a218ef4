"""
A camera_info that cannot describe the images is a typed answer, never a dead perception node.

The test is the camera. NaN focal lengths or principal points used to pass the old `fx > 0`
check (NaN compares false), and the depth backend's plane fit then died on an empty array and
took the perception process with it; a camera_info for another resolution was used silently.
"""

import math
from pathlib import Path
import threading

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from deft_bringup.testing import WALL_CLOCK, Probe, start_graph
from deft_common import image_codec
from deft_interfaces.srv import PredictGrasp, Segment

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'
W, H = 64, 48
GOOD_K = [50.0, 0.0, W / 2, 0.0, 50.0, H / 2, 0.0, 0.0, 1.0]


@pytest.fixture(scope='module')
def camera_graph(ros):
    """Perception (depth backend: the plane fit that crashed) and affordance, no world."""
    overrides = {'perception': {'frame_timeout': 2.0, 'backend': 'depth', **WALL_CLOCK},
                 'affordance': dict(WALL_CLOCK)}
    graph = start_graph('faults_camera', LOG_ROOT, overrides=overrides,
                        only=['perception', 'affordance'], config_dir=CONFIG)
    with graph:
        probe = Probe(name='faults_camera_probe')
        camera = Camera(probe)
        try:
            yield graph, probe, camera
        finally:
            camera.close()
            probe.close()


def scene():
    """Return (rgb, depth): a table 0.6 m away, a box 0.1 m in front of it in the middle."""
    depth = np.full((H, W), 0.6, np.float32)
    depth[16:32, 24:40] = 0.5
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[16:32, 24:40] = (200, 40, 40)
    return rgb, depth


class Camera:
    """Publishes the scene at 10 Hz with the camera_info set last (as a driver streams)."""

    def __init__(self, probe):
        self.probe, self.k, self.size = probe, list(GOOD_K), (W, H)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        colour = self.probe.publisher(Image, 'camera/color/image_raw')
        depth_pub = self.probe.publisher(Image, 'camera/depth/image_raw')
        info = self.probe.publisher(CameraInfo, 'camera/color/camera_info')
        rgb, depth = scene()
        while not self.stop.wait(0.1):
            header = Header(stamp=self.probe.node.get_clock().now().to_msg(),
                            frame_id='camera_color_optical_frame')
            width, height = self.size
            info.publish(CameraInfo(header=header, width=width, height=height,
                                    k=[float(v) for v in self.k]))
            depth_pub.publish(image_codec.to_msg(depth, '32FC1', header))
            colour.publish(image_codec.to_msg(rgb, 'rgb8', header))

    def set(self, k, width=W, height=H):
        """Use this camera_info from now on; return a time no older frame may be used before."""
        self.k, self.size = list(k), (width, height)
        return self.probe.node.get_clock().now().to_msg()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2.0)


def segment(camera, probe, k, **size):
    request = Segment.Request(prompt='', not_before=camera.set(k, **size))
    return probe.call(Segment, 'perception/segment', request, timeout=20, resend_after=4.0)


def with_k(**changes):
    k = list(GOOD_K)
    for name, index in (('fx', 0), ('fy', 4), ('cx', 2), ('cy', 5)):
        if name in changes:
            k[index] = changes[name]
    return k


@pytest.mark.parametrize('k,size,names', [
    (with_k(fx=math.nan), {}, 'fx = nan'),
    (with_k(cx=math.nan), {}, 'cx = nan'),
    (with_k(fy=-50.0), {}, 'fy = -50.0'),
    (with_k(cx=500.0), {}, 'cx = 500.0'),
    (list(GOOD_K), {'width': 1280, 'height': 720}, 'for 1280x720 images but the colour image '
                                                     'is 64x48'),
])
def test_a_bad_camera_info_is_a_typed_answer_and_perception_lives(camera_graph, k, size, names):
    graph, probe, camera = camera_graph
    answer = segment(camera, probe, k, **size)
    assert not answer.success
    assert answer.error_code == Segment.Response.BAD_CAMERA_INFO, answer.error_msg
    assert names in answer.error_msg and 'camera driver' in answer.error_msg
    assert 'perception' not in graph.exited(), graph.tail('perception')
    good = segment(camera, probe, GOOD_K)  # the next good frame is served as usual
    assert good.success, good.error_msg
    assert good.box.width == 16 and good.box.height == 16


def test_affordance_passes_the_typed_reason_on(camera_graph):
    graph, probe, camera = camera_graph
    stamp = camera.set(with_k(fx=math.nan))
    request = PredictGrasp.Request(task='pick up the cup', object_prompt='', not_before=stamp)
    answer = probe.call(PredictGrasp, 'affordance/predict', request, timeout=30,
                        resend_after=6.0)
    assert not answer.success
    assert answer.error_code == PredictGrasp.Response.SEGMENTATION_FAILED, answer.error_msg
    assert 'fx = nan' in answer.error_msg
    assert not graph.exited(), {n: graph.tail(n) for n in graph.exited()}
