"""Priors in the MuJoCo twin without ROS: sim_eval, the recipe and Table 1 (fast, in-process)."""

import json
import os

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch._dynamo  # noqa: E402, F401 - triton before the first GL context (sim_eval)

from deft_eval import bench_table1, recipe, sim_eval  # noqa: E402

SimEvalSettings, SimEvaluator = sim_eval.SimEvalSettings, sim_eval.SimEvaluator
eval_seed, graph_parameters = sim_eval.eval_seed, sim_eval.graph_parameters

# a tiny open_clip text tower and small heads: a real (randomly initialised) model in seconds
TINY_CLIP = {'embed_dim': 32,
             'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'head_width': 16,
                            'patch_size': 16},
             'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2,
                          'layers': 1}}
TINY_NET = ['--image-size', '32', '--d-model', '32', '--heads', '2', '--layers', '1',
            '--deconv-channels', '16', '--num-contacts', '2']


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp('clip') / 'tiny-clip.json'
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


@pytest.fixture(scope='module')
def tiny_model(tiny_clip):
    from deft_affordance.model import AffordanceModel
    return AffordanceModel.build('resnet18', clip_model=tiny_clip, allow_random=True,
                                 image_size=32, num_contacts=2, deconv_channels=16, d_model=32,
                                 heads=2, layers=1)


@pytest.fixture(scope='module')
def cup(tiny_model):
    # a random model's contact may land anywhere in the crop: lift it whatever the distance
    settings = SimEvalSettings.from_graph(max_lift_distance_px=1000.0)
    with SimEvaluator('pick_cup', settings, model=tiny_model) as ev:
        yield ev


def test_settings_are_the_sim_graphs():
    s = SimEvalSettings.from_graph()
    per = graph_parameters('perception')
    assert per['backend'] == 'depth'  # the sim profile over perception.yaml
    assert s.crop_size == per['crop_size'] and s.crop_margin == per['crop_margin']
    assert s.segmentation['min_area'] == per['min_area']
    assert s.retargeting_config == graph_parameters('affordance')['retargeting_config']
    assert (s.width, s.height) == (graph_parameters('sim')['width'],
                                   graph_parameters('sim')['height'])
    assert len(s.initial_std) == 4


@pytest.mark.parametrize('task', ['pick_cup', 'open_drawer'])
def test_the_nominal_grasp_succeeds_through_the_execution_path(task):
    # the task's human grasp, its named hand pose mapped by name onto the world's hand, tau
    with SimEvaluator(task) as ev:
        reward, success = ev.nominal(eval_seed(0), 'test')
    assert success and 0.6 <= reward <= 1.0


def test_the_noise_free_label_succeeds_through_the_models_lifting(cup):
    # crop window, lifting onto the object, wrist frame and MANO retargeting: the label as a
    # prediction goes through exactly what a model's prediction goes through
    prior, out = cup.prior_only('oracle', eval_seed(1), 'train')
    assert out.success, out
    scene = cup.perceive(eval_seed(1), 'train')
    assert prior.contact_point[2] == pytest.approx(0.1, abs=0.01)  # the cup's top, not inside
    assert scene.crop.shape == (cup.s.crop_size, cup.s.crop_size, 3)
    assert scene.mask[int(round(scene.window[1] + scene.window[2] / 2)),
                      int(round(scene.window[0] + scene.window[2] / 2))]


def test_the_heuristic_prior_is_seeded(cup):
    scene = cup.perceive(eval_seed(2), 'train')
    a, b = cup.prior('heuristic', scene, 7), cup.prior('heuristic', scene, 7)
    c = cup.prior('heuristic', scene, 8)
    np.testing.assert_array_equal(a.wrist_orientation, b.wrist_orientation)
    np.testing.assert_array_equal(a.contact_point, b.contact_point)
    assert not np.allclose(a.wrist_orientation, c.wrist_orientation)
    np.testing.assert_array_equal(a.hand_joint_positions, cup.hand.pose('half'))
    centre = cup.world.object_pose()[0]
    assert np.linalg.norm((a.contact_point - centre)[:2]) < 0.02  # the box centre, on the cup


def test_a_tiny_random_model_runs_end_to_end(cup):
    prior, out = cup.prior_only('affordance', eval_seed(3), 'test')
    assert not out.error and 0.0 <= out.reward <= 1.0
    assert prior.hand_joint_names == cup.hand.joint_names and prior.pixels.shape == (4,)
    tuned = cup.fine_tune(prior, eval_seed(3), 'test', episodes=2, warmup=1, elites=1)
    assert len(tuned.rewards) == 2 and all(0.0 <= r <= 1.0 for r in tuned.rewards)
    assert 0.0 <= tuned.reward <= 1.0
    assert cup.fine_tune(None, eval_seed(3), 'test').error  # no prior: a failure, not a crash


def test_table1_is_formatted_and_merged_into_the_bench_file(tmp_path):
    table = {'pick_cup': {'real_world_only': {'train': 0.1, 'test': 0.0},
                          'prior_only': {'train': 0.9, 'test': 0.8},
                          'deft': {'train': 1.0, 'test': 0.9},
                          'heuristic_only': {'train': 0.0, 'test': 0.2}},
             'open_drawer': {'real_world_only': {'train': 0.3, 'test': 0.1},
                             'prior_only': {'train': 0.5, 'test': 0.4},
                             'deft': {'train': 0.6, 'test': 0.5},
                             'heuristic_only': {'train': 0.2, 'test': 0.0}}}
    text = bench_table1.format_table(table)
    lines = text.splitlines()
    assert 'Real-world only' in lines[0] and 'DEFT' in lines[0]
    assert lines[2].split() == ['pick_cup', '10%', '0%', '90%', '80%', '100%', '90%']
    assert lines[-1].split()[0] == 'mean' and lines[-1].split()[3] == '70%'
    out = tmp_path / 'bench.json'
    out.write_text(json.dumps({'sim_episode_wall_s': {'value': 0.4}}))
    bench_table1.merge_results(out, bench_table1.bench_entries(table, 10, 12, 4, 3, 'm.pt', 1.0))
    merged = json.loads(out.read_text())
    assert merged['sim_episode_wall_s'] == {'value': 0.4}  # the other benches' entries stay
    assert merged['sim_table1']['value']['pick_cup']['deft'] == {'train': 1.0, 'test': 0.9}
    assert 'heuristic_only' not in merged['sim_table1']['value']['pick_cup']
    versus = merged['affordance_vs_heuristic']['value']
    assert versus['open_drawer'] == {'prior_only': 0.4, 'heuristic_only': 0.0}
    assert versus['mean'] == {'prior_only': pytest.approx(0.6), 'heuristic_only': 0.1}


def test_prior_only_success_has_rates_and_intervals_per_split():
    results = {'pick_cup': {'successes': {
        'prior_only': {'train': [True, True, False, True], 'test': [False] * 4},
        'heuristic_only': {'train': [False] * 4, 'test': [True] + [False] * 3},
        'deft': {'train': [True] * 4, 'test': [True] * 4}}}}
    entry = bench_table1.prior_only_entry(results, 4, 'm.pt')['prior_only_success']
    cup = entry['value']['pick_cup']
    assert set(cup) == {'prior_only', 'heuristic_only'}
    assert cup['prior_only']['train'] == {'rate': 0.75, 'ci95': [0.3006, 0.9544], 'n': 4}
    assert cup['prior_only']['test']['rate'] == 0.0 and cup['prior_only']['test']['ci95'][1] > 0.4
    assert cup['heuristic_only']['test']['rate'] == 0.25


def test_the_recipe_with_tiny_settings_writes_a_checkpoint_and_a_summary(tmp_path, tiny_clip,
                                                                         capsys):
    out = tmp_path / 'recipe'
    code = recipe.main(['--out', str(out), '--tasks', 'pick_cup,open_drawer', '--n', '4',
                        '--max-epochs', '1', '--train-budget', '30', '--trials', '1',
                        '--batch-size', '4', '--clip-model', tiny_clip] + TINY_NET)
    assert code == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert (out / 'model.pt').is_file() and (out / 'data' / 'manifest.jsonl').is_file()
    assert set(summary['labels']) == {'pick_cup', 'open_drawer'}
    assert all(1 <= k <= 4 for k in summary['labels'].values())  # clips with a contact
    assert (out / 'data' / 'taus.json').is_file()  # the human demonstrations' wrist paths
    assert summary['training']['epochs_planned'] == 1
    for task in ('pick_cup', 'open_drawer'):
        for method in ('affordance', 'heuristic'):
            assert 0.0 <= summary['results'][task][method]['success_rate'] <= 1.0
    assert 'model prior' in capsys.readouterr().out
    lines = (out / 'data' / 'manifest.jsonl').read_text().splitlines()
    sample = json.loads(lines[0])
    assert sample['sim_task'] == 'pick_cup' and sample['split'] in ('train', 'val')
    # only train configurations: no test instance is seen by training or model selection
    for line in lines:
        label = json.loads(line)
        assert label['instance'].split('/')[1] == 'train', label
    u, v = sample['contact_points'][0]
    assert 0 <= u < 128 and 0 <= v < 128  # pixels of the demonstration's hand-free crop
    assert 'person' in sample and 'viewpoint' in sample  # a human clip's provenance


