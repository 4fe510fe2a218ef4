import numpy as np
import pytest

from deft_common import rotations
from deft_common.rotations import Transform
from deft_sim.kinematic_world import SPLITS, PinholeCamera, TabletopWorld, WorldSettings

# A quarter-resolution copy of the sim node's default camera: 0.9 m above the table, looking down
# (optical x = base x, optical y = -base y, optical z = -base z).
CAMERA = PinholeCamera(160, 120, 138.575, 138.575, 79.5, 59.5)
CAMERA_TO_BASE = Transform.from_list([0.5, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0])
TOP_DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # palm +z pointing down
HALF = np.array([0.03, 0.03, 0.05])  # half of the default object size


def make_world(seed=0, **settings):
    world = TabletopWorld(CAMERA, CAMERA_TO_BASE, WorldSettings(**settings))
    world.reset(seed)
    return world


def yaw_of(q):
    x_axis = rotations.rotate(q, [1.0, 0.0, 0.0])
    return np.arctan2(x_axis[1], x_axis[0])


def top_centre(world):
    position, orientation = world.object_pose()
    return position + rotations.rotate(orientation, [0.0, 0.0, HALF[2]])


def test_camera_rays_and_projection_are_inverse():
    camera = PinholeCamera(8, 6, 10.0, 20.0, 3.5, 2.0)
    rays = camera.rays()
    assert rays.shape == (6, 8, 3)
    np.testing.assert_allclose(rays[0, 0], [-0.35, -0.1, 1.0])
    np.testing.assert_allclose(rays[5, 7], [0.35, 0.15, 1.0])
    pixels = camera.project(rays[[0, 3, 5], [0, 6, 7]] * 2.5)
    np.testing.assert_allclose(pixels, [[0, 0], [6, 3], [7, 5]], atol=1e-12)
    np.testing.assert_allclose(camera.project([0.1, -0.2, 0.5]), [[5.5, -6.0]])


def test_reset_is_reproducible_and_places_the_box_upright_in_its_split():
    world = make_world()
    (x0, x1), (yr,) = SPLITS['train']
    poses, yaws = [], []
    for seed in range(40):
        world.reset(seed, 'train')
        p, q = world.object_pose()
        assert x0 <= p[0] <= x1 and yr[0] <= p[1] <= yr[1]
        assert p[2] == pytest.approx(HALF[2])  # standing on the table
        np.testing.assert_allclose(rotations.rotate(q, [0, 0, 1]), [0, 0, 1], atol=1e-12)
        poses.append(p)
        yaws.append(yaw_of(q))
    assert len({tuple(p.round(6)) for p in poses}) == 40
    assert min(yaws) < -2.5 and max(yaws) > 2.5  # any yaw about the vertical
    world.reset(7, 'train')
    again = make_world(7)
    np.testing.assert_array_equal(world.object_pose()[0], again.object_pose()[0])
    np.testing.assert_array_equal(world.object_pose()[1], again.object_pose()[1])
    assert not world.held


def test_test_split_places_the_box_on_both_sides_outside_the_train_band():
    world = make_world()
    ys = []
    for seed in range(40):
        world.reset(seed, 'test')
        p, _ = world.object_pose()
        assert 0.40 <= p[0] <= 0.60 and 0.13 <= abs(p[1]) <= 0.20
        ys.append(p[1])
    assert min(ys) < 0 < max(ys)
    with pytest.raises(ValueError, match="unknown split 'val'.*train, test"):
        world.reset(0, 'val')


@pytest.mark.parametrize('size', [(0.06, 0.06, 0.0), (0.06, 0.06), (0.06, -0.06, 0.1)])
def test_object_size_must_be_three_positive_values(size):
    with pytest.raises(ValueError, match='three positive values'):
        TabletopWorld(CAMERA, CAMERA_TO_BASE, WorldSettings(object_size=size))


def test_render_shows_the_box_where_the_camera_projects_it():
    world = make_world(3)
    rgb, depth = world.render()
    assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
    assert depth.shape == (120, 160) and depth.dtype == np.float32
    # the top centre of the box: 0.9 - 0.1 = 0.8 m in front of the camera, red
    optical = CAMERA_TO_BASE.inverse().apply(top_centre(world))
    u, v = np.round(CAMERA.project(optical)[0]).astype(int)
    assert depth[v, u] == pytest.approx(0.8, abs=1e-6)
    assert rgb[v, u, 0] > 150 and rgb[v, u, 1] < 60 and rgb[v, u, 2] < 60
    # the table (0.9 m) round it, the floor (0.9 + 0.75 m) beyond the table's edge x < 0
    assert depth[v, (u + 40) % 160] == pytest.approx(0.9, abs=1e-6)
    assert depth[60, 0] == pytest.approx(1.65, abs=1e-6)
    assert not np.any(np.isnan(depth))


def test_every_box_pixel_lies_on_the_box_surface_and_every_other_on_the_table():
    world = make_world(5)
    _, depth = world.render()
    position, orientation = world.object_pose()
    points = CAMERA_TO_BASE.apply(CAMERA.rays() * depth[..., None].astype(float))
    on_box = depth < 0.9 - 1e-4
    in_box = rotations.rotate(rotations.conjugate(orientation), points[on_box] - position)
    assert on_box.sum() > 100
    assert np.all(np.abs(in_box) <= HALF + 1e-5)
    np.testing.assert_allclose(np.max(np.abs(in_box) / HALF, axis=1), 1.0, atol=1e-3)
    table = np.abs(depth - 0.9) < 1e-4
    assert np.all(np.abs(points[table][:, 2]) < 1e-5)
    assert on_box.sum() + table.sum() + np.isclose(depth, 1.65).sum() == depth.size


def test_render_of_an_earlier_snapshot_ignores_the_current_pose():
    world = make_world(2)
    snapshot = world.object_pose()
    before_rgb, before_depth = world.render()
    world.update(top_centre(world), TOP_DOWN, 1.0)
    world.update(top_centre(world) + [0.0, 0.0, 0.2], TOP_DOWN, 1.0)
    assert world.held
    _, lifted_depth = world.render()
    assert not np.array_equal(lifted_depth, before_depth)
    rgb, depth = world.render(snapshot)
    np.testing.assert_array_equal(depth, before_depth)
    np.testing.assert_array_equal(rgb, before_rgb)


def test_grasp_distance_is_to_the_centre_to_top_segment():
    world = make_world(1)
    centre, _ = world.object_pose()
    assert world.grasp_distance(centre + [0, 0, 0.03]) == pytest.approx(0.0)
    assert world.grasp_distance(centre + [0, 0, 0.07]) == pytest.approx(0.02)
    assert world.grasp_distance(centre + [0.03, 0.04, 0.01]) == pytest.approx(0.05)
    assert world.grasp_distance(centre + [0.0, 0.03, -0.04]) == pytest.approx(0.05)


def test_reward_is_zero_with_the_hand_far_away():
    world = make_world(4)
    assert world.task_reward() == (0.0, False)
    world.update(top_centre(world) + [0.0, 0.0, 0.5], TOP_DOWN, 1.0)
    assert not world.held
    assert world.task_reward() == (0.0, False)


def test_reward_shaping_follows_the_closest_approach_of_the_episode():
    world = make_world(4)
    centre, _ = world.object_pose()
    world.update(centre + [0.075, 0.0, 0.02], TOP_DOWN, 0.0)
    reward, success = world.task_reward()
    assert reward == pytest.approx(0.3 * (1 - 0.075 / 0.15)) and not success
    world.update(centre + [0.5, 0.0, 0.02], TOP_DOWN, 0.0)  # moving away keeps the best
    assert world.task_reward()[0] == pytest.approx(0.15)
    world.update(centre + [0.0, -0.03, 0.04], TOP_DOWN, 0.0)
    assert world.task_reward()[0] == pytest.approx(0.3 * (1 - 0.03 / 0.15))
    assert not world.held  # open hand
    world.reset(4)
    assert world.task_reward() == (0.0, False)


def test_closed_hand_at_the_top_lifts_the_box_to_full_reward():
    world = make_world(6)
    start, _ = world.object_pose()
    top = top_centre(world)
    world.update(top, TOP_DOWN, 0.7)
    assert world.held
    assert world.task_reward() == (pytest.approx(0.3), False)
    world.update(top + [0.0, 0.0, 0.05], TOP_DOWN, 0.7)
    assert world.task_reward() == (pytest.approx(0.65), False)
    np.testing.assert_allclose(world.object_pose()[0], start + [0.0, 0.0, 0.05], atol=1e-12)
    world.update(top + [0.0, 0.0, 0.10], TOP_DOWN, 0.7)
    assert world.task_reward() == (pytest.approx(1.0), True)
    world.update(top + [0.02, 0.0, 0.30], TOP_DOWN, 0.7)
    assert world.task_reward() == (pytest.approx(1.0), True)  # capped
    np.testing.assert_allclose(world.object_pose()[0], start + [0.02, 0.0, 0.30], atol=1e-12)


def test_lift_target_sets_the_success_height():
    world = make_world(6, lift_target=0.2)
    top = top_centre(world)
    world.update(top, TOP_DOWN, 1.0)
    world.update(top + [0.0, 0.0, 0.1], TOP_DOWN, 1.0)
    assert world.task_reward() == (pytest.approx(0.65), False)
    world.update(top + [0.0, 0.0, 0.2], TOP_DOWN, 1.0)
    assert world.task_reward() == (pytest.approx(1.0), True)


@pytest.mark.parametrize('offset', [[0.04, 0.0, 0.0], [0.0, -0.035, -0.02], [0.0, 0.0, 0.04]])
def test_a_wrong_wrist_position_does_not_lift_the_box(offset):
    world = make_world(8)
    start, _ = world.object_pose()
    wrist = top_centre(world) + offset
    world.update(wrist, TOP_DOWN, 1.0)
    world.update(wrist + [0.0, 0.0, 0.15], TOP_DOWN, 1.0)
    assert not world.held
    np.testing.assert_array_equal(world.object_pose()[0], start)
    reward, success = world.task_reward()
    assert reward < 0.3 and not success


def test_grasp_tolerance_and_closure_decide_the_grasp():
    world = make_world(8)
    top = top_centre(world)
    world.update(top + [0.029, 0.0, 0.0], TOP_DOWN, 0.59)  # near enough, not closed enough
    assert not world.held
    world.update(top + [0.029, 0.0, 0.0], TOP_DOWN, 0.6)
    assert world.held


def test_the_hand_holds_until_closure_drops_below_release_and_the_box_lands_upright():
    world = make_world(9)
    start, q0 = world.object_pose()
    top = top_centre(world)
    world.update(top, TOP_DOWN, 1.0)
    turned = rotations.multiply(rotations.from_rotvec([0.0, 0.0, 0.5]), TOP_DOWN)
    world.update(top + [0.05, 0.0, 0.1], turned, 0.4)  # between release and grasp closure
    assert world.held
    np.testing.assert_allclose(world.object_pose()[0], start + [0.05, 0.0, 0.1], atol=1e-12)
    world.update(top + [0.05, 0.0, 0.1], turned, 0.2)
    assert not world.held
    p, q = world.object_pose()
    np.testing.assert_allclose(p, start + [0.05, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rotations.rotate(q, [0, 0, 1]), [0, 0, 1], atol=1e-12)
    assert np.angle(np.exp(1j * (yaw_of(q) - yaw_of(q0) - 0.5))) == pytest.approx(0, abs=1e-9)


def test_a_held_box_never_goes_through_the_table():
    world = make_world(10)
    start, _ = world.object_pose()
    top = top_centre(world)
    world.update(top, TOP_DOWN, 1.0)
    world.update(top - [0.0, 0.0, 0.05], TOP_DOWN, 1.0)
    assert world.held and world.object_pose()[0][2] == pytest.approx(HALF[2])
    world.update(top + [0.0, 0.0, 0.05], TOP_DOWN, 1.0)  # the grip did not slip
    np.testing.assert_allclose(world.object_pose()[0], start + [0.0, 0.0, 0.05], atol=1e-12)


def test_palm_offset_puts_the_grasp_point_along_the_wrist_z_axis():
    world = make_world(11, palm_offset=0.05)
    wrist = top_centre(world) + [0.0, 0.0, 0.05]
    world.update(wrist, [0.0, 0.0, 0.0, 1.0], 1.0)  # palm facing up: palm point 10 cm too high
    assert not world.held
    world.update(wrist, TOP_DOWN, 1.0)  # palm facing down: palm point on the top
    assert world.held
