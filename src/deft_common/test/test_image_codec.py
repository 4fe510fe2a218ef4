import numpy as np
import pytest
from sensor_msgs.msg import Image

from deft_common import image_codec


@pytest.mark.parametrize('encoding,dtype,shape', [
    ('rgb8', np.uint8, (4, 5, 3)), ('mono8', np.uint8, (4, 5)),
    ('16UC1', np.uint16, (4, 5)), ('32FC1', np.float32, (4, 5))])
def test_round_trip(encoding, dtype, shape):
    arr = (np.arange(np.prod(shape)) * 7 % 250).astype(dtype).reshape(shape)
    msg = image_codec.to_msg(arr, encoding)
    assert (msg.width, msg.height) == (5, 4)
    np.testing.assert_array_equal(image_codec.to_array(msg), arr)


def test_padded_rows_and_big_endian():
    arr = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint16)
    msg = Image(height=2, width=3, encoding='16UC1', is_bigendian=1, step=8)
    rows = [arr[i].astype('>u2').tobytes() + b'\xff\xff' for i in range(2)]
    msg.data = b''.join(rows)
    np.testing.assert_array_equal(image_codec.to_array(msg), arr)


def test_depth_units_and_invalid_values():
    mm = np.array([[0, 1000], [1500, 65535]], dtype=np.uint16)
    depth = image_codec.depth_in_metres(image_codec.to_msg(mm, '16UC1'))
    assert np.isnan(depth[0, 0])
    assert depth[0, 1] == pytest.approx(1.0) and depth[1, 0] == pytest.approx(1.5)
    m = np.array([[np.nan, -1.0, np.inf, 0.5]], dtype=np.float32)
    depth = image_codec.depth_in_metres(image_codec.to_msg(m, '32FC1'))
    assert np.isnan(depth[0, :3]).all() and depth[0, 3] == pytest.approx(0.5)


def test_bgr_becomes_rgb_and_errors_are_clear():
    bgr = np.zeros((1, 1, 3), np.uint8)
    bgr[0, 0] = (10, 20, 30)
    assert image_codec.to_rgb(image_codec.to_msg(bgr, 'bgr8'))[0, 0].tolist() == [30, 20, 10]
    with pytest.raises(ValueError, match='unsupported image encoding'):
        image_codec.to_array(Image(encoding='yuv422', width=1, height=1, step=2, data=b'ab'))
    with pytest.raises(ValueError, match='too short'):
        image_codec.to_array(Image(encoding='mono8', width=4, height=4, step=4, data=b'ab'))
    with pytest.raises(ValueError, match='does not fit'):
        image_codec.to_msg(np.zeros((2, 2)), 'rgb8')


def test_latest_frame_keeps_the_newest_and_decodes_it():
    from builtin_interfaces.msg import Time

    from deft_common.image_codec import LatestFrame, to_msg

    frames = LatestFrame()
    assert frames.stamp_ns() == -1 and frames.latest_rgb_or_none() is None
    with pytest.raises(ValueError, match='no camera frame'):
        frames.rgb()
    for sec, value in ((1, 10), (2, 20)):
        img = np.full((4, 5, 3), value, np.uint8)
        msg = to_msg(img, 'bgr8')
        msg.header.stamp = Time(sec=sec, nanosec=5)
        frames.keep(msg)
    assert frames.stamp_ns() == 2_000_000_005
    assert frames.rgb().shape == (4, 5, 3) and int(frames.rgb()[0, 0, 0]) == 20
    frames.keep(to_msg(np.zeros((2, 2), np.float32), '32FC1'))
    assert frames.latest_rgb_or_none() is None  # a depth image is not a colour frame


def test_arrays_from_read_only_message_data_are_writable_copies():
    from types import SimpleNamespace

    from deft_common.image_arrays import array_of, depth_of, fields_of, rgb_of

    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = SimpleNamespace(**fields_of(rgb))  # data are bytes: read-only when viewed
    out = rgb_of(msg)
    np.testing.assert_array_equal(out, rgb)
    out[0, 0, 0] = 255  # a copy: the message is untouched
    assert array_of(msg)[0, 0, 0] == 0
    mm = SimpleNamespace(**fields_of(np.array([[0, 1500]], dtype=np.uint16)))
    depth = depth_of(mm)
    assert np.isnan(depth[0, 0]) and depth[0, 1] == np.float32(1.5)
