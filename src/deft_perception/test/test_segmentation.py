import numpy as np
import pytest

from deft_perception.geometry import CameraModel
from deft_perception.prompts import Prompt, parse_prompt
from deft_perception.segmentation import (
    CenterRegionSegmenter,
    DepthPlaneSegmenter,
    SegmentationError,
    make_segmenter,
)

W, H = 320, 240
CAM = CameraModel(300.0, 300.0, 159.5, 119.5, W, H)
RGB = np.zeros((H, W, 3), np.uint8)


def table(distance=0.9, tilt=0.0):
    """Depth of a plane `distance` in front of the camera, tilted about the optical x axis."""
    v = np.arange(H)[:, None] * np.ones((1, W))
    slope = np.tan(tilt) * (v - CAM.cy) / CAM.fy  # z = distance + tan(tilt) * y, y = z (v-cy)/fy
    return distance / (1.0 - slope)


def with_box(depth, rows, cols, height=0.05):
    depth = depth.copy()
    depth[rows, cols] -= height
    return depth


def seg(prompt, depth, **kw):
    return DepthPlaneSegmenter(**kw).segment(RGB, depth, CAM, parse_prompt(prompt, W, H))


def box_mask(rows, cols):
    mask = np.zeros((H, W), bool)
    mask[rows, cols] = True
    return mask


def test_a_box_five_cm_above_a_plane_is_the_salient_object():
    rows, cols = slice(100, 140), slice(150, 190)
    mask = seg('', with_box(table(0.9), rows, cols))
    np.testing.assert_array_equal(mask, box_mask(rows, cols))


def test_the_plane_may_be_tilted():
    rows, cols = slice(60, 100), slice(40, 90)
    mask = seg('', with_box(table(0.9, tilt=0.5), rows, cols))
    np.testing.assert_array_equal(mask, box_mask(rows, cols))


def test_invalid_depth_is_neither_table_nor_object():
    rows, cols = slice(100, 140), slice(150, 190)
    depth = with_box(table(), rows, cols)
    depth[:, :60] = np.nan
    depth[:20] = 0.0
    depth[110, 160] = np.nan
    expected = box_mask(rows, cols)
    expected[110, 160] = False
    np.testing.assert_array_equal(seg('', depth), expected)


def test_no_object_on_the_plane_is_an_error():
    with pytest.raises(SegmentationError, match='nothing stands on the support plane'):
        seg('', table())
    with pytest.raises(SegmentationError, match='nothing stands'):  # a hole is not an object
        seg('', with_box(table(), slice(100, 140), slice(150, 190), height=-0.05))


def test_objects_under_min_height_or_min_area_are_dropped():
    depth = with_box(table(), slice(100, 140), slice(150, 190), height=0.005)
    with pytest.raises(SegmentationError, match='nothing stands'):
        seg('', depth)
    depth = with_box(table(), slice(100, 110), slice(150, 160))  # 100 px < min_area 150
    with pytest.raises(SegmentationError, match='nothing stands'):
        seg('', depth)
    assert seg('', depth, min_area=50).sum() == 100


def test_depth_speckle_is_dropped_by_min_area():
    rows, cols = slice(100, 140), slice(150, 190)
    depth = with_box(table(), rows, cols)
    speckle = np.random.default_rng(0).random((H, W)) < 0.03
    speckle[rows.start - 2:rows.stop + 2, cols.start - 2:cols.stop + 2] = False
    depth[speckle] -= 0.03  # thousands of flying pixels above the table
    np.testing.assert_array_equal(seg('', depth), box_mask(rows, cols))


@pytest.mark.parametrize('depth, message', [
    (np.full((H, W), np.nan), 'too little valid depth'),
    (np.zeros((H, W)), 'too little valid depth'),
])
def test_no_depth_is_an_error(depth, message):
    with pytest.raises(SegmentationError, match=message):
        seg('', depth)


def test_sparse_depth_off_the_sampling_grid_still_finds_the_table():
    depth = np.full((H, W), np.nan)
    depth[1::4, 1::4] = with_box(table(), slice(100, 140), slice(150, 190))[1::4, 1::4]
    with pytest.raises(SegmentationError, match='nothing stands'):  # isolated pixels < min_area
        seg('', depth)
    mask = seg('', depth, min_area=1)  # every sampled box pixel is an object of its own
    v, u = np.nonzero(mask)
    assert len(v) == 1 and 100 <= v[0] < 140 and 150 <= u[0] < 190


TWO = (slice(100, 140), slice(20, 60)), (slice(90, 150), slice(220, 280))  # small left, big right


def two_boxes():
    depth = table()
    for rows, cols in TWO:
        depth = with_box(depth, rows, cols)
    return depth


def test_objects_touching_only_at_a_corner_are_two_objects():
    depth = with_box(with_box(table(), slice(100, 140), slice(100, 140)),
                     slice(140, 160), slice(140, 160))  # 4-connected components
    np.testing.assert_array_equal(seg('', depth), box_mask(slice(100, 140), slice(100, 140)))
    np.testing.assert_array_equal(seg('point: 150, 150', depth),
                                  box_mask(slice(140, 160), slice(140, 160)))


def test_salient_is_the_biggest_object():
    np.testing.assert_array_equal(seg('', two_boxes()), box_mask(*TWO[1]))


def test_equal_objects_pick_the_one_nearest_the_image_centre():
    depth = with_box(with_box(table(), slice(10, 40), slice(10, 40)),
                     slice(100, 130), slice(140, 170))
    np.testing.assert_array_equal(seg('', depth), box_mask(slice(100, 130), slice(140, 170)))


def test_point_prompt_picks_the_object_at_or_near_the_point():
    depth = two_boxes()
    np.testing.assert_array_equal(seg('point: 40, 120', depth), box_mask(*TWO[0]))
    np.testing.assert_array_equal(seg('point: 75, 120', depth), box_mask(*TWO[0]))  # 16 px off
    with pytest.raises(SegmentationError, match=r'no object at or within 20 px of \(81, 120\)'):
        seg('point: 81, 120', depth)  # 22 px off


def test_box_prompt_picks_the_object_most_inside_it():
    depth = two_boxes()
    np.testing.assert_array_equal(seg('box: 0, 0, 100, 240', depth), box_mask(*TWO[0]))
    np.testing.assert_array_equal(seg('box: 50, 100, 240, 140', depth), box_mask(*TWO[1]))
    with pytest.raises(SegmentationError, match='no object inside the box'):
        seg('box: 100, 0, 200, 240', depth)


def test_the_depth_backend_refuses_text_prompts():
    with pytest.raises(SegmentationError, match='text prompts need a text-ranking backend'):
        seg('label: cup', two_boxes())


def test_fake_segmenter_covers_the_centre_fraction_of_each_side():
    depth = np.full((H, W), np.nan)
    mask = CenterRegionSegmenter(0.3).segment(RGB, depth, CAM, Prompt('salient'))
    np.testing.assert_array_equal(mask, box_mask(slice(84, 156), slice(112, 208)))
    assert mask.sum() == 72 * 96  # 0.3 * 240 x 0.3 * 320


def test_fake_segmenter_centres_on_a_point_clipped_to_the_image():
    fake = CenterRegionSegmenter(0.5)
    mask = fake.segment(RGB, table(), CAM, parse_prompt('point: 10, 200', W, H))
    np.testing.assert_array_equal(mask, box_mask(slice(140, 240), slice(0, 90)))


def test_fake_segmenter_returns_a_box_prompt_as_is():
    mask = CenterRegionSegmenter().segment(RGB, table(), CAM,
                                           parse_prompt('box: 10, 20, 30.4, 60.6', W, H))
    np.testing.assert_array_equal(mask, box_mask(slice(20, 61), slice(10, 30)))


def test_make_segmenter_by_name():
    assert make_segmenter('fake', center_fraction=0.2).fraction == 0.2
    depth = make_segmenter('depth', min_height=0.02, min_area=7, iterations=5, seed=3,
                           inlier_distance=0.002, center_fraction=0.2)
    assert isinstance(depth, DepthPlaneSegmenter)
    assert (depth.min_height, depth.min_area, depth.iterations, depth.seed,
            depth.inlier_distance) == (0.02, 7, 5, 3, 0.002)
    with pytest.raises(ValueError, match="unknown segmentation backend 'sim'; available: fake, "
                                         'depth, sam'):
        make_segmenter('sim')


def test_what_floats_above_max_height_is_not_an_object_on_the_table():
    """The robot's hand waiting 35 cm above the table must not be taken for the object."""
    from deft_perception.geometry import CameraModel
    from deft_perception.prompts import parse_prompt
    from deft_perception.segmentation import DepthPlaneSegmenter

    cam = CameraModel(fx=100.0, fy=100.0, cx=39.5, cy=29.5, width=80, height=60)
    depth = np.full((60, 80), 0.9, np.float32)
    depth[5:25, 5:35] = 0.55   # a large "hand" 35 cm above the table
    depth[35:50, 50:65] = 0.8  # a smaller cup, 10 cm tall
    rgb = np.zeros((60, 80, 3), np.uint8)
    seg = DepthPlaneSegmenter(min_area=20, max_height=0.25)
    mask = seg.segment(rgb, depth, cam, parse_prompt('', 80, 60))
    assert mask[40, 55] and not mask[10, 10]
    everything = DepthPlaneSegmenter(min_area=20, max_height=1.0)
    assert everything.segment(rgb, depth, cam, parse_prompt('', 80, 60))[10, 10]
    with pytest.raises(ValueError, match='max_height'):
        DepthPlaneSegmenter(min_height=0.3, max_height=0.2)


def test_the_support_plane_is_reused_while_the_table_stays_and_refitted_when_it_moves():
    seg = DepthPlaneSegmenter()
    first = (slice(100, 140), slice(150, 190))
    second = (slice(40, 80), slice(30, 70))  # another object on the same table
    for rows, cols in (first, second, first):
        mask = seg.segment(RGB, with_box(table(0.9), rows, cols), CAM, parse_prompt('', W, H))
        np.testing.assert_array_equal(mask, box_mask(rows, cols))
    assert seg.fits == 1  # one RANSAC fit served the three frames
    # the camera moved (the table now 20 cm further and tilted): the old plane explains nothing
    rows, cols = first
    moved = with_box(table(1.1, tilt=0.4), rows, cols)
    np.testing.assert_array_equal(seg.segment(RGB, moved, CAM, parse_prompt('', W, H)),
                                  box_mask(rows, cols))
    assert seg.fits == 2
    # without reuse every frame is fitted, with the same answer
    fresh = DepthPlaneSegmenter(reuse_plane=False)
    for _ in range(2):
        np.testing.assert_array_equal(fresh.segment(RGB, moved, CAM, parse_prompt('', W, H)),
                                      box_mask(rows, cols))
    assert fresh.fits == 2
    with pytest.raises(ValueError, match='refit_ratio'):
        DepthPlaneSegmenter(refit_ratio=0.0)
