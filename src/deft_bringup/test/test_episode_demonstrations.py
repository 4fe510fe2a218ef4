"""The episode node follows each task's demonstrated tau, turns included (built in-process)."""

from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter

from deft_cem.episode import load_demonstrations
from deft_cem.episode_node import EpisodeNode
from deft_common import rotations
from deft_common.node_main import ConfigurationError

SHIPPED = Path(__file__).resolve().parents[2] / 'deft_cem' / 'config' / 'demonstrations.yaml'


def build(tmp_path, **params):
    values = {'run_root': str(tmp_path / 'runs'), 'record_bags': False, **params}
    return EpisodeNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_a_tasks_tau_with_turns_reaches_the_arm_goal(ros, tmp_path):
    demos = tmp_path / 'demos.yaml'
    demos.write_text('Pour the cup:\n  waypoints: [0, 0, 0.1, 0.1, 0, 0.1]\n'
                     '  rotations: [0, 0, 0, 1.5, 0, 0]\n')
    node = build(tmp_path, demonstrations=str(demos),
                 post_grasp_waypoints=[0.0, 0.0, 0.05])
    try:
        steps = node.steps
        names = node.space.hand_joint_names
        xi = node.space.xi([0.4, 0.0, 0.1], rotations.from_rotvec([0.2, 0.0, 0.7]), names,
                           np.zeros(len(names)))
        eps = np.zeros_like(xi)
        goal = steps.grasp_goal('base_link', xi, eps, steps.demonstration('pour the cup '))
        assert len(goal.post_grasp_waypoints) == 2
        last = goal.post_grasp_waypoints[1]
        assert (last.position.x, last.position.z) == pytest.approx((0.1, 0.1))
        # the arm composes grasp * rel: the wrist ends turned 1.5 rad about base x
        o = last.orientation
        grasp = node.space.command(xi, eps).wrist_orientation
        turned = rotations.multiply(grasp, [o.x, o.y, o.z, o.w])
        expected = rotations.multiply(rotations.from_rotvec([1.5, 0, 0]), grasp)
        assert rotations.angle_between(turned, expected) < 1e-6
        first = goal.post_grasp_waypoints[0].orientation
        assert (first.x, first.y, first.z, first.w) == pytest.approx((0, 0, 0, 1))
        # a task without a demonstration follows post_grasp_waypoints, without turns
        other = steps.grasp_goal('base_link', xi, eps, steps.demonstration('wave'))
        assert [w.position.z for w in other.post_grasp_waypoints] == pytest.approx([0.05])
    finally:
        node.destroy_node()


def test_bad_demonstrations_refuse_to_start(ros, tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('pour:\n  waypoints: [0, 0]\n')
    with pytest.raises(ConfigurationError, match="task 'pour'"):
        build(tmp_path, demonstrations=str(bad))
    with pytest.raises(ConfigurationError, match='No such file'):
        build(tmp_path, demonstrations=str(tmp_path / 'missing.yaml'))
    with pytest.raises(ConfigurationError, match='post_grasp_rotations'):
        build(tmp_path, demonstrations='none', post_grasp_rotations=[0.0, 1.0])


def test_shipped_demonstrations_are_the_sim_tasks_demonstrations():
    """One source of truth in practice: the installed file equals deft_sim's TaskSpecs."""
    from deft_sim.tasks import TASK_SPECS

    demos = load_demonstrations(SHIPPED)
    assert sorted(demos) == sorted(spec.text for spec in TASK_SPECS.values())
    for spec in TASK_SPECS.values():
        tau = demos[spec.text]
        np.testing.assert_allclose(tau.waypoints, spec.waypoints, atol=1e-5, err_msg=spec.name)
        turns = getattr(spec, 'rotations', np.zeros_like(spec.waypoints))
        np.testing.assert_allclose(tau.rotations, turns, atol=1e-5, err_msg=spec.name)
