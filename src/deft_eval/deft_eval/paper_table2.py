"""
The paper's Table 2 ablations in the twin: other rewards and other policies than DEFT's.

Run per task and seed after that seed's Table 1 protocol (deft_eval.paper_protocol), whose DEFT
run (the twin's reward, pi = cVAE) is the reference of both halves:

- rewards (`REWARDS`): the same fine-tuning from the affordance prior, but CEM is told another
  reward than the twin's: `embedding_resnet18` / `embedding_r3m` = deft_affordance's
  EmbeddingReward, exp(-d / scale) of the embedding distance d of the episode's final frame to a
  goal frame, with a ResNet-18 and with R3M's architecture (ResNet-50) - both with seeded random
  weights, since no pretrained weights exist on these machines, so they stand for the
  architectures, not for the trained encoders; `operator` = a simulated person: the twin's
  reward plus Gaussian noise, rounded to 0.1 and clipped to 0..1 (what a person's score in the
  rqt panel is). The goal frame is the final frame of the task's demonstrated grasp
  (SimEvaluator.nominal) on a train configuration no other part uses; `scale` is the distance
  between that goal frame and the same configuration's initial frame (an untouched scene scores
  exp(-1)). pi (cVAE) is then trained on the run and executed as in Table 1; success is always
  the twin's.
- policies (`POLICIES`): on Table 1's DEFT run, pi replaced by deft_policy's `mlp`,
  `transformer` and `direct` (an MLP phi(I0) -> xi + delta) models, and by `elite_mean`: no
  policy, the mean residual of the same top episodes executed everywhere (direct parameter
  estimation in its plainest form, the CEM answer).
"""

from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from deft_eval import paper_protocol as pp

TASKS = ('pour_cup', 'open_drawer', 'pick_spoon')  # the paper's Table 2 tasks
REWARDS = ('embedding_resnet18', 'embedding_r3m', 'operator')
POLICIES = ('mlp', 'transformer', 'direct', 'elite_mean')
ENCODER_ARCH = {'embedding_resnet18': 'resnet18', 'embedding_r3m': 'resnet50'}
GOAL_SEED = 800_000        # the train configuration of the goal frame (no other part uses it)
OPERATOR_NOISE = 0.1       # std of the simulated person's score noise
OPERATOR_STEP = 0.1        # the granularity of a person's 0..1 score


def random_encoder(arch: str, init_seed: int = 0):
    """Return a torchvision ResNet trunk (fc removed) with seeded random weights."""
    import torch

    from deft_affordance.encoders import build_trunk
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return build_trunk(arch)


def operator_score(reward: float, rng: np.random.Generator, noise: float = OPERATOR_NOISE,
                   step: float = OPERATOR_STEP) -> float:
    """Return a simulated person's 0..1 score of an episode whose true reward is `reward`."""
    if noise < 0 or step <= 0:
        raise ValueError(f'need noise >= 0 and step > 0, got {noise}, {step}')
    noisy = float(reward) + noise * rng.standard_normal()
    return float(np.clip(round(noisy / step) * step, 0.0, 1.0))


class TwinEmbeddingReward:
    """A reward function of fine_tune_run: the embedding reward of the final frame."""

    def __init__(self, ev, encoder, goal_seed: int = GOAL_SEED):
        from deft_affordance.embedding_reward import EmbeddingReward

        ev.nominal(goal_seed, 'train')
        goal = ev.world.render()[0]
        ev.world.reset(goal_seed, 'train')
        start = ev.world.render()[0]
        probe = EmbeddingReward(encoder, 1.0, name='probe')
        probe.set_goal(goal)
        scale = probe.distance(start)
        if not scale > 0:
            raise ValueError('the goal frame does not differ from the initial frame')
        self.reward = EmbeddingReward(encoder, scale)
        self.reward.set_goal(goal)
        self.scale = scale

    def __call__(self, ev, command, config: int, split: str):
        """Execute the command; return (embedding reward of the final frame, twin success)."""
        _, success = ev.run_command(command, config, split)
        return self.reward.reward(ev.world.render()[0]), success


class SimulatedOperator:
    """A reward function of fine_tune_run: the twin's reward as a person would score it."""

    def __init__(self, seed: int, noise: float = OPERATOR_NOISE, step: float = OPERATOR_STEP):
        self.rng = np.random.default_rng([seed, 4242])
        self.noise, self.step = noise, step

    def __call__(self, ev, command, config: int, split: str):
        """Execute the command; return (the person's score, twin success)."""
        reward, success = ev.run_command(command, config, split)
        return operator_score(reward, self.rng, self.noise, self.step), success


def reward_function(variant: str, ev, seed: int) -> Callable:
    """Return the reward function of a Table 2 reward variant."""
    if variant == 'operator':
        return SimulatedOperator(seed)
    if variant in ENCODER_ARCH:
        return TwinEmbeddingReward(ev, random_encoder(ENCODER_ARCH[variant]))
    raise ValueError(f'reward {variant!r} is not one of {", ".join(REWARDS)}')


class EliteMean:
    """The `elite_mean` stand-in for pi: the mean residual of a run's top episodes."""

    config = SimpleNamespace(feature_kind='none')  # reads no image (deft_policy.runtime)

    def __init__(self, run_dir: Path, elites: int):
        from deft_policy.dataset import select_elites

        names, chosen, _ = select_elites([Path(run_dir)], elites)
        self.parameter_names = names
        self.eps = np.mean([e.entry.eps for e in chosen], axis=0)

    def check_parameter_names(self, names: Sequence[str]) -> None:
        """Raise ValueError unless the run's parameters are `names`."""
        if list(names) != list(self.parameter_names):
            raise ValueError(f'the run has parameters {self.parameter_names}, not {list(names)}')

    def residual(self, xi, image=None, features=None, sample=False, seed=None) -> np.ndarray:
        """Return the same residual whatever the scene."""
        return self.eps.copy()


def run_table2(ev, root: Path, seed: int, s: pp.ProtocolSettings, deft_run: Path,
               rewards: Sequence[str] = REWARDS, policies: Sequence[str] = POLICIES,
               extractor=None, progress: Optional[pp.Progress] = None) -> Dict[str, object]:
    """
    Run the reward and policy ablations of one task and seed; return results like run_protocol.

    `deft_run` is the seed's Table 1 DEFT run directory (the policies are trained on it).
    """
    from dataclasses import replace
    import time

    from deft_policy.policy import load_policy

    configs = pp.eval_configurations(seed, s.eval_configs)
    space = pp.parameter_space(ev)
    out: Dict[str, object] = {'task': ev.spec.name, 'seed': int(seed), 'rewards': {},
                              'policies': {}, 'seconds': {}}
    for variant in rewards:
        t0 = time.monotonic()
        fn = reward_function(variant, ev, seed)
        source = 'operator' if variant == 'operator' else 'embedding'
        ft = pp.fine_tune_run(ev, 'affordance', root, f'{variant}-seed{seed}', s, seed,
                              reward_fn=fn, reward_source=source)
        path = pp.train_pi(ft.run_dir, s, extractor, seed)
        episodes = pp.evaluate(ev, 'affordance', configs, seed,
                               load_policy(path, space.names, s.resnet_weights or None))
        out['rewards'][variant] = _entry(episodes, run_dir=str(ft.run_dir),
                                         fine_tune_rewards=ft.rewards,
                                         fine_tune_success=ft.successes,
                                         scale=getattr(fn, 'scale', None))
        _done(out, 'rewards', variant, t0, progress)
    for model in policies:
        t0 = time.monotonic()
        if model == 'elite_mean':
            policy = EliteMean(deft_run, s.policy_elites)
        else:
            path = pp.train_pi(deft_run, replace(s, policy_model=model), extractor, seed)
            policy = load_policy(path, space.names, s.resnet_weights or None)
        episodes = pp.evaluate(ev, 'affordance', configs, seed, policy)
        out['policies'][model] = _entry(episodes)
        _done(out, 'policies', model, t0, progress)
    return out


def _entry(episodes, **extra) -> Dict[str, object]:
    entry = dict(extra, episodes=[asdict(e) for e in episodes])
    for split in pp.SPLITS:
        entry[split] = [e.success for e in episodes if e.split == split]
    return entry


def _done(out, kind: str, name: str, t0: float, progress) -> None:
    import time

    out['seconds'][name] = round(time.monotonic() - t0, 1)
    if progress is not None:
        entry = out[kind][name]
        rates = ', '.join(f'{sp} {np.mean(entry[sp]):.0%}' for sp in pp.SPLITS)
        progress(f'{out["task"]} seed {out["seed"]} table 2 {name}: {rates} '
                 f'({out["seconds"][name]:.0f} s)')
