"""The paper's Table 1 protocol: configurations, fine-tuning runs, pi on elites, zero-shot eval."""

from dataclasses import dataclass
import json
import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault('MUJOCO_GL', 'egl')  # offscreen rendering on the CPU; before mujoco loads
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch._dynamo  # noqa: E402, F401 - triton before the first GL context (sim_eval)

from deft_common.runs import RunStore, image_path  # noqa: E402
from deft_eval import bench_paper  # noqa: E402
from deft_eval import paper_protocol as pp  # noqa: E402
from deft_policy.features import ResNetFeatures  # noqa: E402

JOINTS = ['j0', 'j1']
TARGET = np.array([0.03, -0.02])  # the contact offset (x, y) that the fake task rewards


@dataclass
class FakePrior:
    method: str
    contact_point: np.ndarray
    wrist_orientation: np.ndarray
    hand_joint_names: list
    hand_joint_positions: np.ndarray


class FakeEvaluator:
    """The SimEvaluator interface the protocol uses, with a reward known in closed form."""

    def __init__(self):
        self.spec = SimpleNamespace(name='fake_task', text='do the fake task')
        self.hand = SimpleNamespace(joint_names=JOINTS, lower=[0.0, 0.0], upper=[1.5, 1.5])
        self.s = SimpleNamespace(initial_std=(0.02, 0.2, 0.1, 0.1), heuristic_std=(0.4, 0.3))
        self.calls = []   # (what, seed, split)

    def perceive(self, seed, split):
        self.calls.append(('perceive', seed, split))
        rgb = np.full((40, 40, 3), seed % 251, dtype=np.uint8)
        rgb[:, :20, 1] = 255 if split == 'test' else 0
        return SimpleNamespace(rgb=rgb, seed=seed)

    def prior(self, method, scene, seed):
        base = 0.001 * (scene.seed % 7)  # the prior moves a little with the configuration
        return FakePrior(method, np.array([0.4 + base, 0.0, 0.1]), np.array([1.0, 0, 0, 0]),
                         JOINTS, np.array([0.5, 0.5]))

    def _reward(self, contact, seed, split, what):
        self.calls.append((what, seed, split))
        err = np.linalg.norm(contact[:2] - (np.array([0.4 + 0.001 * (seed % 7), 0.0]) + TARGET))
        reward = float(np.exp(-err / 0.02))
        return reward, reward > 0.5

    def run_command(self, command, seed, split):
        return self._reward(command.contact_point, seed, split, 'execute')

    def execute_prior(self, prior, seed, split):
        return self._reward(prior.contact_point, seed, split, 'execute_prior')


TINY = pp.ProtocolSettings(episodes=8, warmup=4, elites=2, policy_elites=3, policy_epochs=20,
                           eval_configs=2)


@pytest.fixture(scope='module')
def extractor():
    return ResNetFeatures(image_size=32)


def test_configurations_are_disjoint():
    from deft_sim.instances import configuration

    for seed in range(3):
        tune = set(pp.fine_tune_seeds(seed, 40))
        ev = pp.eval_configurations(seed, 10)
        assert not tune & set(ev['train']) and not tune & set(ev['test'])
        for other in range(3):
            if other != seed:  # seeds of the protocol do not share configurations either
                assert not tune & set(pp.fine_tune_seeds(other, 40))
    train = {configuration('pick_cup', s, 'train')[0].name for s in pp.fine_tune_seeds(0, 30)}
    test = {configuration('pick_cup', s, 'test')[0].name for s in pp.eval_seeds(0, 10)}
    assert train and test and not train & test   # test instances were never fine-tuned on
    with pytest.raises(ValueError):
        pp.fine_tune_seeds(100, 1)
    with pytest.raises(ValueError):
        pp.ProtocolSettings(episodes=10, warmup=4, elites=5)
    with pytest.raises(ValueError):
        pp.ProtocolSettings(policy_elites=31)


def test_fine_tuning_writes_a_robot_run_on_fresh_train_configurations(tmp_path):
    ev = FakeEvaluator()
    ft = pp.fine_tune_run(ev, 'heuristic', tmp_path, 'rwo-seed1', TINY, seed=1)
    store = RunStore(tmp_path, 'rwo-seed1')
    settings, entries = store.settings(), store.episodes()
    assert (settings.episodes, settings.warmup_episodes, settings.elites) == (8, 4, 2)
    assert settings.prior == 'heuristic' and settings.seed == 1
    assert settings.initial_std[3] == 0.4   # the heuristic's wider wrist std, as the node's
    assert [e.reward for e in entries] == ft.rewards and len(entries) == 8
    assert ft.configurations == pp.fine_tune_seeds(1, 8)      # one fresh configuration each
    executed = [c for c in ev.calls if c[0] == 'execute']
    assert [(s, sp) for _, s, sp in executed] == [(s, 'train') for s in ft.configurations]
    assert all(image_path(ft.run_dir, k).is_file() for k in range(8))
    assert entries[-1].optimizer_state is not None     # resumable like the node's runs
    assert all(e.message == f'configuration train/{s}' for e, s in zip(entries,
                                                                         ft.configurations))


def test_pi_is_trained_on_the_elites_of_the_run_only(tmp_path, extractor):
    from deft_policy.policy import load_policy

    ev = FakeEvaluator()
    ft = pp.fine_tune_run(ev, 'affordance', tmp_path, 'deft-seed0', TINY, seed=0)
    path = pp.train_pi(ft.run_dir, TINY, extractor)
    assert path == ft.run_dir / 'policy_cvae.pt'
    policy = load_policy(path)
    order = sorted(range(8), key=lambda k: (-ft.rewards[k], k))[:TINY.policy_elites]
    assert sorted(policy.config.sources) == sorted(f'deft-seed0:{k}' for k in order)
    assert policy.config.feature_kind == 'image' and policy.config.model == 'cvae'


def _snapshot(run_dir: Path):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.rglob('*'))
            if p.is_file()}


def test_evaluation_runs_pi_without_updating_anything(tmp_path, extractor):
    from deft_policy.policy import load_policy

    ev = FakeEvaluator()
    ft = pp.fine_tune_run(ev, 'affordance', tmp_path, 'deft-seed0', TINY, seed=0)
    path = pp.train_pi(ft.run_dir, TINY, extractor)
    policy = load_policy(path)
    before = _snapshot(ft.run_dir)
    weights = {k: v.clone() for k, v in policy.model.state_dict().items()}
    ev.calls.clear()
    configs = pp.eval_configurations(0, 2)
    episodes = pp.evaluate(ev, 'affordance', configs, 0, policy)
    assert _snapshot(ft.run_dir) == before                       # no episode, no retraining
    assert all(torch.equal(weights[k], v) for k, v in policy.model.state_dict().items())
    assert [(e.seed, e.split) for e in episodes] == \
        [(s, sp) for sp in pp.SPLITS for s in configs[sp]]
    executed = [c for c in ev.calls if c[0] == 'execute']
    assert [(s, sp) for _, s, sp in executed] == [(e.seed, e.split) for e in episodes]
    # the executed residual is pi's own prediction for this scene's I0 and xi, z = 0
    space = pp.parameter_space(ev)
    scene = ev.perceive(configs['test'][0], 'test')
    xi = pp.prior_xi(space, ev.prior('affordance', scene, 0))
    eps = policy.residual(xi, image=scene.rgb)
    expected = ev._reward(space.command(xi, eps).contact_point, configs['test'][0], 'test', 'x')
    assert episodes[len(configs['train'])].reward == pytest.approx(expected[0])


def test_run_protocol_reports_every_method(tmp_path, extractor):
    out = pp.run_protocol(FakeEvaluator(), tmp_path, 2, TINY, extractor=extractor)
    assert set(out['methods']) == set(pp.METHODS)
    for method, entry in out['methods'].items():
        assert len(entry['train']) == len(entry['test']) == TINY.eval_configs, method
    assert Path(out['methods']['deft']['run_dir']).name == 'deft-seed2'
    table = bench_paper.aggregate([out, dict(out, seed=3)])
    cell = table['fake_task']['deft']['test']
    assert cell['seeds'] == [2, 3] and cell['pooled']['n'] == 2 * TINY.eval_configs
    assert cell['ci95'] == [cell['mean'], cell['mean']]   # two equal seeds: no spread
    json.dumps(table)


def test_the_protocol_runs_in_the_twin(tmp_path, extractor):
    # the real evaluator: perception, the heuristic prior, physics, pi trained and executed
    from deft_eval.sim_eval import SimEvalSettings, SimEvaluator

    s = pp.ProtocolSettings(episodes=2, warmup=1, elites=1, policy_elites=2, policy_epochs=5,
                            eval_configs=1)
    with SimEvaluator('pick_cup', SimEvalSettings.from_graph()) as ev:
        out = pp.run_protocol(ev, tmp_path, 0, s, ('real_world_only',), extractor)
    entry = out['methods']['real_world_only']
    assert len(entry['fine_tune_rewards']) == 2 and Path(entry['policy']).is_file()
    assert [e['split'] for e in entry['episodes']] == ['train', 'test']
    assert all(0.0 <= e['reward'] <= 1.0 for e in entry['episodes'])


# --- Table 2 ---------------------------------------------------------------------------------
def test_the_simulated_operator_scores_like_a_person():
    from deft_eval.paper_table2 import operator_score

    rng = np.random.default_rng(0)
    scores = [operator_score(0.73, rng) for _ in range(400)]
    assert all(0.0 <= v <= 1.0 and abs(v * 10 - round(v * 10)) < 1e-9 for v in scores)
    assert np.mean(scores) == pytest.approx(0.73, abs=0.03) and len(set(scores)) > 2
    assert operator_score(0.98, rng, noise=0.0) == 1.0 and operator_score(-0.2, rng) >= 0.0
    with pytest.raises(ValueError):
        operator_score(0.5, rng, step=0.0)


def test_table2_ablations_on_a_deft_run(tmp_path, extractor):
    from deft_eval import paper_table2

    ev = FakeEvaluator()
    ft = pp.fine_tune_run(ev, 'affordance', tmp_path, 'deft-seed0', TINY, seed=0)
    out = paper_table2.run_table2(ev, tmp_path, 0, TINY, ft.run_dir, rewards=('operator',),
                                  policies=('mlp', 'elite_mean'), extractor=extractor)
    op = RunStore(tmp_path, 'operator-seed0')
    assert op.settings().reward_source == 'operator'
    assert all(abs(e.reward * 10 - round(e.reward * 10)) < 1e-9 for e in op.episodes())
    assert (ft.run_dir / 'policy_mlp.pt').is_file()     # trained on the DEFT run
    top = sorted(RunStore(tmp_path, 'deft-seed0').episodes(), key=lambda e: -e.reward)[:3]
    mean = paper_table2.EliteMean(ft.run_dir, 3)
    assert mean.residual(np.zeros(10)) == pytest.approx(np.mean([e.eps for e in top], axis=0))
    for entry in (out['rewards']['operator'], out['policies']['mlp'],
                  out['policies']['elite_mean']):
        assert len(entry['train']) == len(entry['test']) == TINY.eval_configs
    ref = {'task': 'fake_task', 'seed': 0,   # Table 1's DEFT result of the same seed
           'methods': {'deft': {'train': [True, False], 'test': [False, False]}}}
    entry = bench_paper.table2_entry([dict(ref, table2=dict(out, task='fake_task'))], 1.0)
    value = entry['paper_table2']['value']['fake_task']
    assert list(value['rewards']) == ['sim', 'operator']
    assert list(value['policies']) == ['cvae', 'mlp', 'elite_mean']
    assert value['rewards']['sim']['train']['mean'] == 0.5   # the reference is Table 1's
    assert 'mean' in bench_paper.format_table2(entry['paper_table2'])


def test_the_embedding_reward_scores_the_goal_frame_one(extractor):
    from deft_eval.paper_table2 import TwinEmbeddingReward, random_encoder
    from deft_eval.sim_eval import SimEvalSettings, SimEvaluator

    with SimEvaluator('pick_cup', SimEvalSettings.from_graph()) as ev:
        reward = TwinEmbeddingReward(ev, random_encoder('resnet18'), goal_seed=800_001)
        ev.nominal(800_001, 'train')
        assert reward.reward.reward(ev.world.render()[0]) == pytest.approx(1.0, abs=1e-6)
        ev.world.reset(800_001, 'train')    # the untouched scene: exp(-1) by the scale
        assert reward.reward.reward(ev.world.render()[0]) == pytest.approx(np.exp(-1), 1e-4)
