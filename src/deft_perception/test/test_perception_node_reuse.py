"""
In-process: perception/segment answers a request for the frame it just segmented again.

An episode segments the frame it perceived a second time when the affordance node predicts
its grasp; with sam that is tens of seconds. The second answer is the first (reuse_answer), and
only for the same colour and depth stamps, prompt and crop size.
"""

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from deft_common import image_codec
from deft_interfaces.srv import Segment
from deft_perception.perception_node import PerceptionNode

W, H = 64, 48


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_node(ctx, **params):
    return PerceptionNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in {'backend': 'fake', 'frame_timeout': 0.0,
                                            **params}.items()])


def show(node, stamp_ns: int, distance: float) -> None:
    """Hand the node a colour and depth frame stamped stamp_ns, the scene `distance` m away."""
    header = Header(frame_id='camera')
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
    rng = np.random.default_rng(stamp_ns)
    node.keep('colour', image_codec.to_msg(
        rng.integers(0, 255, (H, W, 3), dtype=np.uint8), 'rgb8', header))
    node.keep('depth', image_codec.to_msg(np.full((H, W), distance, np.float32), '32FC1',
                                          header))
    node.keep('info', CameraInfo(header=header, width=W, height=H,
                                 k=[50.0, 0.0, W / 2, 0.0, 50.0, H / 2, 0.0, 0.0, 1.0]))


def segment(node, prompt: str = '', crop_size: int = 0) -> Segment.Response:
    response = node.on_segment(Segment.Request(prompt=prompt, crop_size=crop_size),
                               Segment.Response())
    assert response.success, response.error_msg
    return response


def test_the_same_frame_and_prompt_get_the_same_answer_without_segmenting_again(context):
    node = make_node(context)
    try:
        show(node, 10**9, 0.5)
        first = segment(node)
        again = segment(node)
        assert node.reused == 1
        assert again.points == first.points and again.crop.data == first.crop.data
        assert again.header.stamp == first.header.stamp and again.box == first.box
        assert first.centroid.z == pytest.approx(0.5)

        show(node, 2 * 10**9, 0.7)  # a new frame: segmented, not the old answer
        new = segment(node)
        assert node.reused == 1 and new.centroid.z == pytest.approx(0.7)
        assert new.header.stamp.sec == 2

        other = segment(node, prompt=f'point: {W // 2}, {H // 2}')  # another prompt
        assert node.reused == 1 and other.success
        segment(node, prompt=f'point: {W // 2}, {H // 2}', crop_size=64)  # another crop size
        assert node.reused == 1
        assert segment(node, prompt=f'point: {W // 2}, {H // 2}', crop_size=64).crop.width == 64
        assert node.reused == 2
    finally:
        node.destroy_node()


def test_reuse_answer_false_segments_every_request(context):
    node = make_node(context, reuse_answer=False)
    try:
        show(node, 10**9, 0.5)
        assert segment(node).points == segment(node).points
        assert node.reused == 0
    finally:
        node.destroy_node()
