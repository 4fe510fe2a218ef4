import math

import numpy as np
import pytest

from deft_arm.motion import Pose, Workspace, interpolate, pre_grasp_pose, waypoint_pose
from deft_common import rotations

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])
PALM_DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # 180 deg about x: the wrist's +z points down
RATE = 50.0


def about(axis, angle):
    return rotations.from_rotvec(np.asarray(axis, dtype=float) * angle)


def test_pose_from_list_normalises_the_quaternion():
    pose = Pose.from_list([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(pose.position, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(pose.orientation, IDENTITY)
    with pytest.raises(ValueError, match='7 values'):
        Pose.from_list([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='not a valid quaternion'):
        Pose.from_list([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0])


def test_translation_is_paced_by_the_linear_speed_limit():
    start = Pose(np.array([0.35, 0.0, 0.35]), PALM_DOWN)
    goal = Pose(np.array([0.35, 0.0, 0.10]), PALM_DOWN)
    path = interpolate(start, goal, max_speed=0.25, max_angular_speed=1.5, rate_hz=RATE)
    assert len(path) == 50  # 0.25 m at 0.25 m/s = 1 s = 50 periods
    positions = np.array([p.position for p in path])
    steps = np.linalg.norm(np.diff(np.vstack([start.position, positions]), axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.25 / RATE)
    np.testing.assert_allclose(positions[:, 2], 0.35 - 0.005 * np.arange(1, 51))
    np.testing.assert_allclose(positions[-1], goal.position)
    for p in path:
        np.testing.assert_allclose(p.orientation, PALM_DOWN)


def test_halving_the_speed_doubles_the_steps():
    start = Pose(np.zeros(3), IDENTITY)
    goal = Pose(np.array([0.3, 0.4, 0.0]), IDENTITY)  # 0.5 m
    assert len(interpolate(start, goal, 0.5, 1.5, RATE)) == 50
    assert len(interpolate(start, goal, 0.25, 1.5, RATE)) == 100
    assert len(interpolate(start, goal, 0.25, 1.5, 10.0)) == 20


def test_rotation_is_paced_by_the_angular_speed_limit():
    start = Pose(np.array([0.4, 0.0, 0.3]), IDENTITY)
    goal = Pose(start.position, about([0, 0, 1], math.pi / 2))
    path = interpolate(start, goal, max_speed=0.25, max_angular_speed=1.5, rate_hz=RATE)
    assert len(path) == math.ceil(math.pi / 2 / 1.5 * RATE) == 53
    orientations = [start.orientation] + [p.orientation for p in path]
    angles = [rotations.angle_between(a, b) for a, b in zip(orientations, orientations[1:])]
    np.testing.assert_allclose(angles, (math.pi / 2) / 53)
    assert max(angles) <= 1.5 / RATE
    assert rotations.angle_between(path[-1].orientation, goal.orientation) < 1e-9
    for p in path:
        np.testing.assert_array_equal(p.position, start.position)


def test_the_slower_of_the_two_limits_sets_the_duration():
    start = Pose(np.zeros(3), IDENTITY)
    goal = Pose(np.array([0.05, 0.0, 0.0]), about([1, 0, 0], 1.5))
    # 0.05 m at 0.25 m/s = 0.2 s; 1.5 rad at 1.5 rad/s = 1 s
    path = interpolate(start, goal, 0.25, 1.5, RATE)
    assert len(path) == 50
    np.testing.assert_allclose(path[24].position, [0.025, 0.0, 0.0])
    assert rotations.angle_between(IDENTITY, path[24].orientation) == pytest.approx(0.75)


def test_rotation_takes_the_short_way_round():
    start = Pose(np.zeros(3), about([0, 0, 1], math.radians(170)))
    goal = Pose(np.zeros(3), about([0, 0, 1], math.radians(-170)))  # 20 deg away
    path = interpolate(start, goal, 0.25, 1.5, RATE)
    assert len(path) == math.ceil(math.radians(20) / 1.5 * RATE)


def test_no_motion_is_one_step_at_the_goal():
    pose = Pose(np.array([0.4, 0.1, 0.2]), PALM_DOWN)
    path = interpolate(pose, pose, 0.25, 1.5, RATE)
    assert len(path) == 1
    np.testing.assert_array_equal(path[0].position, pose.position)
    np.testing.assert_array_equal(path[0].orientation, pose.orientation)


@pytest.mark.parametrize('orientation, offset', [
    (IDENTITY, [0.0, 0.0, -1.0]),  # wrist +z = base +z: back off downwards
    (PALM_DOWN, [0.0, 0.0, 1.0]),  # palm down: the pre-grasp pose is above the grasp
    (about([0, 1, 0], math.pi / 2), [-1.0, 0.0, 0.0]),  # wrist +z = base +x
    (about([1, 0, 0], math.pi / 2), [0.0, 1.0, 0.0]),  # wrist +z = base -y
])
def test_pre_grasp_backs_off_along_the_approach_axis(orientation, offset):
    grasp = Pose(np.array([0.5, 0.1, 0.2]), orientation)
    pre = pre_grasp_pose(grasp, 0.08)
    np.testing.assert_allclose(pre.position, grasp.position + 0.08 * np.array(offset),
                               atol=1e-12)
    np.testing.assert_array_equal(pre.orientation, grasp.orientation)
    # approaching = moving along the wrist's +z
    approach = (grasp.position - pre.position) / 0.08
    np.testing.assert_allclose(rotations.rotate(rotations.conjugate(orientation), approach),
                               [0.0, 0.0, 1.0], atol=1e-12)


def test_pre_grasp_at_zero_distance_is_the_grasp():
    grasp = Pose(np.array([0.5, 0.1, 0.2]), PALM_DOWN)
    np.testing.assert_array_equal(pre_grasp_pose(grasp, 0.0).position, grasp.position)


def test_waypoint_offset_is_in_base_axes_and_orientation_relative_to_the_grasp():
    grasp = Pose(np.array([0.5, 0.0, 0.1]), PALM_DOWN)
    lift = waypoint_pose(grasp, [0.0, 0.0, 0.15], [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(lift.position, [0.5, 0.0, 0.25])  # up in base z, not wrist z
    np.testing.assert_allclose(lift.orientation, PALM_DOWN)
    twist = about([0, 0, 1], math.pi / 2)
    turned = waypoint_pose(grasp, [0.0, 0.0, 0.0], 3.0 * twist)  # not normalised on purpose
    np.testing.assert_allclose(rotations.to_matrix(turned.orientation),
                               rotations.to_matrix(PALM_DOWN) @ rotations.to_matrix(twist),
                               atol=1e-12)
    assert np.linalg.norm(turned.orientation) == pytest.approx(1.0)
    assert rotations.angle_between(turned.orientation, grasp.orientation) == \
        pytest.approx(math.pi / 2)


WORKSPACE = Workspace(np.array([0.1, -0.5, 0.0]), np.array([0.8, 0.5, 0.7]))


@pytest.mark.parametrize('position', [[0.35, 0.0, 0.35], [0.1, -0.5, 0.0], [0.8, 0.5, 0.7]])
def test_workspace_accepts_poses_inside_and_on_the_boundary(position):
    assert WORKSPACE.check(Pose(np.array(position), PALM_DOWN)) is None


@pytest.mark.parametrize('position, message', [
    ([0.05, 0.0, 0.3], 'grasp pose x = 0.050 m is below the workspace minimum 0.100'),
    ([0.9, 0.0, 0.3], 'grasp pose x = 0.900 m is above the workspace maximum 0.800'),
    ([0.4, -0.6, 0.3], 'grasp pose y = -0.600 m is below the workspace minimum -0.500'),
    ([0.4, 0.55, 0.3], 'grasp pose y = 0.550 m is above the workspace maximum 0.500'),
    ([0.4, 0.0, -0.01], 'grasp pose z = -0.010 m is below the workspace minimum 0.000'),
    ([0.4, 0.0, 0.75], 'grasp pose z = 0.750 m is above the workspace maximum 0.700'),
    ([math.nan, 0.0, 0.3], 'grasp pose x = nan is not a finite position'),
    ([0.4, 0.0, math.inf], 'grasp pose z = inf is not a finite position'),
])
def test_workspace_rejects_unreachable_poses_naming_the_pose(position, message):
    assert WORKSPACE.check(Pose(np.array(position), PALM_DOWN), 'grasp pose') == message


def test_a_pre_grasp_pose_can_leave_the_workspace_when_the_grasp_does_not():
    grasp = Pose(np.array([0.4, 0.0, 0.65]), PALM_DOWN)
    assert WORKSPACE.check(grasp) is None
    assert WORKSPACE.check(pre_grasp_pose(grasp, 0.08), 'pre-grasp pose') == \
        'pre-grasp pose z = 0.730 m is above the workspace maximum 0.700'
