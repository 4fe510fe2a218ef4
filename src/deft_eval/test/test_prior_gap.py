"""prior_gap: a prior against the robot's nominal grasp, one component swapped at a time."""

import json
import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch._dynamo  # noqa: E402, F401 - triton before the first GL context (sim_eval)

from deft_eval import prior_gap  # noqa: E402
from deft_eval.sim_eval import Prior, SimEvaluator, eval_seed  # noqa: E402


@pytest.fixture(scope='module')
def cup():
    with SimEvaluator('pick_cup') as ev:
        yield ev


def test_the_nominal_grasp_against_itself_is_no_gap(cup):
    # a prior that is the nominal grasp: zero distances, and every variant is that grasp
    cup.world.reset(eval_seed(0), 'test')
    position, wrist = cup.spec.grasp_in(cup.world)
    prior = Prior('nominal', position, wrist, list(cup.hand.joint_names),
                  np.asarray(cup.hand.pose(cup.spec.hand_pose)))
    row = prior_gap.measure(cup, eval_seed(0), 'test', prior=prior)
    assert row['distance'] == pytest.approx({'position_cm': 0.0, 'wrist_deg': 0.0,
                                             'hand_rad': 0.0}, abs=1e-6)
    assert row['success'] == dict.fromkeys(prior_gap.VARIANTS, True)


def test_the_heuristic_prior_misses_and_each_swap_is_its_own_execution(cup):
    row = prior_gap.measure(cup, eval_seed(1), 'test', method='heuristic')
    assert row['success']['nominal'] and not row['success']['prior']
    d = row['distance']
    assert d['position_cm'] > 1.0 and d['wrist_deg'] > 10.0 and d['hand_rad'] > 0.1
    summary = prior_gap.summarise([row, {'error': 'off the object',
                                         'success': {v: v == 'nominal'
                                                     for v in prior_gap.VARIANTS}}])
    assert summary['no_prior'] == 1 and summary['success_rate']['nominal'] == 1.0
    assert summary['success_rate']['prior'] == 0.0
    assert 'pick_cup' in prior_gap.table({'pick_cup': summary})


def test_the_command_refuses_bad_arguments_and_writes_json(tmp_path, capsys):
    assert prior_gap.main(['--tasks', 'juggle']) == 2
    assert prior_gap.main(['--tasks', 'pick_cup']) == 2  # affordance needs a checkpoint
    out = tmp_path / 'gap.json'
    assert prior_gap.main(['--method', 'heuristic', '--tasks', 'pick_cup', '--trials', '1',
                           '--out', str(out)]) == 0
    data = json.loads(out.read_text())
    assert data['summary']['pick_cup']['configurations'] == 1
    assert set(data['rows']['pick_cup'][0]['success']) == set(prior_gap.VARIANTS)
    assert 'heuristic prior against the robot' in capsys.readouterr().out
