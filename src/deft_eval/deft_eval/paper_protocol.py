"""
The paper's Table 1 protocol in the MuJoCo twin, in-process: fine-tune, train pi, run pi zero-shot.

For one task and one seed of the protocol (`run_protocol`):

1. Fine-tuning (`fine_tune_run`): DEFT's Algorithm 1 through deft_cem.fine_tune.FineTuneRun, the
   class the episode node drives, so the run directory it leaves is the robot's (run.json,
   episodes/000007.json with xi, eps, reward and the optimiser state, episodes/000007.I0.png).
   Each of the N episodes runs on a freshly drawn train configuration (`fine_tune_seeds`): the
   scene is perceived (sim_eval: rendered, segmented, cropped), the prior computed on it (its
   xi), eps = ask(), xi + eps executed, the twin's reward recorded. The heuristic prior's random
   wrist yaw is drawn from the run's seed, as the episode node does ("one run keeps one prior").
2. pi (`train_pi`): deft_policy's own dataset and training code on the run directory: the top
   `policy_elites` (the paper: ten) episodes of the run, c = (phi(I0), xi) -> delta, phi the
   ResNet-18 features of the saved I0 PNGs; the checkpoint is written into the run directory as
   deft_train_policy writes it (policy_<model>.pt).
3. Zero-shot evaluation (`evaluate`): the checkpoint is loaded as the episode node loads it
   (deft_policy.policy.load_policy), and on `eval_configs` train and `eval_configs` test
   configurations (`eval_seeds`: none of them a fine-tuning configuration; the test ones with
   instances and placements no train configuration has, deft_sim.instances) each episode
   perceives the scene, computes the prior's xi, asks pi for eps = pi(phi(I0), xi) (z = 0 for
   the cVAE) and executes xi + eps once. Nothing is updated: no optimiser, no training, no run.

Methods (`METHODS`): `deft` = the affordance prior + fine-tuning + pi; `real_world_only` = the
heuristic prior (box centre, random wrist yaw, half-closed hand) + the same fine-tuning and pi;
`affordance_only` = the affordance prior executed as it is, on the same configurations;
`heuristic_only` = the heuristic prior executed as it is (for bench.json's prior_only_success).
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

FINE_TUNE_SEED = 600_000   # first seed of fine-tuning configurations (labels use 0, 1, ...)
EVAL_SEED = 700_000        # first seed of evaluation configurations
SEED_STRIDE = 10_000       # seeds of one protocol seed: [base + stride * seed, + stride)
SPLITS = ('train', 'test')
METHODS = ('deft', 'real_world_only', 'affordance_only', 'heuristic_only')
FINE_TUNED = {'deft': 'affordance', 'real_world_only': 'heuristic'}   # method -> prior
PRIOR_ONLY = {'affordance_only': 'affordance', 'heuristic_only': 'heuristic'}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProtocolSettings:
    """The budgets of the protocol (the paper: N = 30, M = 10, E = 5, pi on the top 10)."""

    episodes: int = 30          # N: fine-tuning episodes, each on a fresh train configuration
    warmup: int = 10            # M: episodes drawn from the initial D before the first refit
    elites: int = 5             # E: elites of each CEM refit (the episode node's default)
    policy_elites: int = 10     # episodes of the run pi is trained on (the best ones)
    policy_model: str = 'cvae'  # deft_policy.models.MODELS
    policy_epochs: int = 300
    eval_configs: int = 10      # configurations per split on which pi (or a prior) runs once
    resnet_weights: str = ''    # phi(I0) weights ('' = the seeded random initialisation)
    max_skips: int = 10         # configurations without a prior (perception) tolerated per run

    def __post_init__(self):
        n, m, e = self.episodes, self.warmup, self.elites
        if not (1 <= m <= n and 1 <= e <= m):
            raise ValueError(f'need 1 <= elites (E={e}) <= warmup (M={m}) <= episodes (N={n})')
        if not 2 <= self.policy_elites <= n:
            raise ValueError(f'policy_elites must be within [2, episodes={n}], got '
                             f'{self.policy_elites}')
        if self.eval_configs < 1 or self.policy_epochs < 1 or self.max_skips < 0:
            raise ValueError('need eval_configs >= 1, policy_epochs >= 1, max_skips >= 0')
        from deft_policy.models import MODELS
        if self.policy_model not in MODELS:
            raise ValueError(f'policy_model {self.policy_model!r} is not one of '
                             f'{", ".join(MODELS)}')


def _check_seed(seed: int) -> int:
    if not 0 <= int(seed) < 100:
        raise ValueError(f'protocol seeds are 0..99, got {seed}')
    return int(seed)


def fine_tune_seeds(seed: int, count: int) -> List[int]:
    """Return the configuration seeds (split train) of a protocol seed's fine-tuning episodes."""
    start = FINE_TUNE_SEED + SEED_STRIDE * _check_seed(seed)
    if not 0 <= count <= SEED_STRIDE:
        raise ValueError(f'count must be within [0, {SEED_STRIDE}], got {count}')
    return list(range(start, start + count))


def eval_seeds(seed: int, count: int) -> List[int]:
    """Return the configuration seeds of a protocol seed's evaluation (each split)."""
    start = EVAL_SEED + SEED_STRIDE * _check_seed(seed)
    if not 0 <= count <= SEED_STRIDE:
        raise ValueError(f'count must be within [0, {SEED_STRIDE}], got {count}')
    return list(range(start, start + count))


def parameter_space(ev):
    """Return the grasp parameter space xi of an evaluator's hand (as the episode node's)."""
    from deft_cem.grasp_params import ParameterSpace
    return ParameterSpace(ev.hand.joint_names, ev.hand.lower, ev.hand.upper)


def prior_xi(space, prior) -> np.ndarray:
    """Return xi of a sim_eval Prior (tau_scale 1)."""
    return space.xi(prior.contact_point, prior.wrist_orientation, prior.hand_joint_names,
                    prior.hand_joint_positions)


def initial_std(ev, space, prior: str) -> List[float]:
    """Return the initial std of D for a prior, from the graph's episode.yaml (as the node)."""
    contact, wrist, hand, tau = ev.s.initial_std
    if prior == 'heuristic':  # the node explores wrist and hand wider from the heuristic prior
        wrist, hand = ev.s.heuristic_std
    return space.default_std(contact, wrist, hand, tau).tolist()


@dataclass
class FineTuneResult:
    """A finished fine-tuning run: where it is, its rewards, its configurations."""

    run_dir: Path
    rewards: List[float]
    configurations: List[int]   # the train seed of each recorded episode, in order
    successes: List[bool] = field(default_factory=list)  # the twin's success of each episode
    skipped: List[int] = field(default_factory=list)  # seeds without a prior (not recorded)
    seconds: float = 0.0


def twin_reward(ev, command, config: int, split: str):
    """Execute a command at a configuration; return (the twin's reward, success)."""
    return ev.run_command(command, config, split)


def fine_tune_run(ev, prior: str, root: Path, run_id: str, s: ProtocolSettings, seed: int,
                  progress: Optional[Progress] = None, reward_fn: Callable = twin_reward,
                  reward_source: str = 'sim') -> FineTuneResult:
    """
    Run Algorithm 1 from `prior` with N fresh train configurations; write the run directory.

    The run's CEM seed (and the heuristic prior's yaw seed) is `seed`; a configuration whose
    scene yields no prior (perception found nothing) is skipped as the robot would retry, at
    most `max_skips` times (then ValueError). `reward_fn(ev, command, config, split)` executes
    an episode and returns (the reward told to CEM, the twin's success); `reward_source` is
    what the run records (sim, embedding, operator).
    """
    from deft_cem.fine_tune import FineTuneRequest, FineTuneRun
    from deft_common.runs import save_initial_image

    t0 = time.monotonic()
    space = parameter_space(ev)
    request = FineTuneRequest(task=ev.spec.text, episodes=s.episodes, warmup_episodes=s.warmup,
                              elites=s.elites, reward_source=reward_source, optimizer='cem',
                              prior=prior, run_id=run_id, seed=int(seed))
    run = FineTuneRun.open(Path(root), request, initial_std(ev, space, prior), s.elites,
                           reward_source, space.names)
    seeds = iter(fine_tune_seeds(seed, s.episodes + s.max_skips))
    used, skipped, successes = [], [], []
    while not run.done:
        config = next(seeds, None)
        if config is None:
            raise ValueError(f'{run_id}: {len(skipped)} configurations gave no prior '
                             f'(seeds {skipped}); more than max_skips={s.max_skips}')
        try:
            scene = ev.perceive(config, 'train')
            grasp = ev.prior(prior, scene, seed)
        except ValueError:
            skipped.append(config)
            continue
        xi = prior_xi(space, grasp)
        eps = run.ask()
        reward, success = reward_fn(ev, space.command(xi, eps), config, 'train')
        save_initial_image(run.store.dir, run.next_episode, scene.rgb)
        run.record(xi, eps, reward, reward_source, message=f'configuration train/{config}',
                   task_success=bool(success))
        used.append(config)
        successes.append(bool(success))
        if progress is not None:
            progress(f'{run_id} episode {run.next_episode}/{s.episodes}: reward {reward:.3f}')
    return FineTuneResult(run.store.dir, run.rewards, used, successes, skipped,
                          time.monotonic() - t0)


def train_pi(run_dir: Path, s: ProtocolSettings, extractor=None, seed: int = 0) -> Path:
    """
    Train pi on the top `policy_elites` episodes of a run with deft_policy; return its path.

    The training set is deft_policy.dataset.build_dataset (image features phi(I0) of the run's
    I0 PNGs); the checkpoint goes to <run_dir>/policy_<model>.pt as deft_train_policy writes it.
    """
    from deft_policy.dataset import build_dataset
    from deft_policy.features import ResNetFeatures
    from deft_policy.policy import config_for, train_policy

    extractor = extractor or ResNetFeatures(s.resnet_weights)
    dataset = build_dataset([Path(run_dir)], elites=s.policy_elites, features='image',
                            extractor=extractor)
    config = config_for(dataset, s.policy_model, extractor, epochs=s.policy_epochs,
                        elites=s.policy_elites, seed=int(seed))
    policy = train_policy(dataset, config)
    return policy.save(Path(run_dir) / f'policy_{s.policy_model}.pt')


@dataclass
class EvalEpisode:
    """One execution on one configuration: pi's residual, or the prior as it is."""

    seed: int
    split: str
    reward: float
    success: bool
    error: str = ''   # why there was no prior (reward 0, no success)


def evaluate(ev, prior: str, configurations: Dict[str, Sequence[int]], prior_seed: int,
             policy=None) -> List[EvalEpisode]:
    """
    Execute once on every configuration {split: seeds}: xi + pi(phi(I0), xi), or the prior alone.

    `policy` is a loaded ResidualPolicy (None: the prior executed as it is). Only inference:
    nothing is trained, told or recorded. A configuration without a prior is a failed episode.
    """
    from deft_policy.runtime import policy_residual

    space = parameter_space(ev)
    if policy is not None:
        policy.check_parameter_names(space.names)
    out = []
    for split, seeds in configurations.items():
        for config in seeds:
            try:
                scene = ev.perceive(config, split)
                grasp = ev.prior(prior, scene, prior_seed)
            except ValueError as exc:
                out.append(EvalEpisode(config, split, 0.0, False, str(exc)))
                continue
            if policy is None:
                reward, ok = ev.execute_prior(grasp, config, split)
            else:
                xi = prior_xi(space, grasp)
                eps = policy_residual(policy, xi, scene.rgb, sample=False, seed=None)
                reward, ok = ev.run_command(space.command(xi, eps), config, split)
            out.append(EvalEpisode(config, split, float(reward), bool(ok)))
    return out


def eval_configurations(seed: int, count: int) -> Dict[str, List[int]]:
    """Return {split: seeds} of a protocol seed's evaluation (the same seeds in both splits)."""
    seeds = eval_seeds(seed, count)
    return {split: list(seeds) for split in SPLITS}


def run_protocol(ev, root: Path, seed: int, s: ProtocolSettings,
                 methods: Sequence[str] = METHODS, extractor=None,
                 progress: Optional[Progress] = None) -> Dict[str, object]:
    """
    Run every method of the protocol for one task (ev) and one seed; write runs under root.

    Return {'task', 'seed', 'settings', 'methods': {method: {'episodes': [EvalEpisode dicts],
    'train': [bool], 'test': [bool]} (+ 'run_dir', 'fine_tune_rewards', 'policy' for the
    fine-tuned ones)}, 'seconds': {...}}.
    """
    from deft_policy.policy import load_policy

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f'unknown methods {unknown}; known: {", ".join(METHODS)}')
    task = ev.spec.name
    configs = eval_configurations(seed, s.eval_configs)
    space = parameter_space(ev)
    out: Dict[str, object] = {'task': task, 'seed': int(seed), 'settings': asdict(s),
                              'methods': {}, 'seconds': {}}
    for method in methods:
        t0 = time.monotonic()
        entry: Dict[str, object] = {}
        if method in FINE_TUNED:
            run_id = f'{method}-seed{seed}'
            ft = fine_tune_run(ev, FINE_TUNED[method], root, run_id, s, seed, progress)
            path = train_pi(ft.run_dir, s, extractor, seed)
            policy = load_policy(path, space.names, s.resnet_weights or None)
            episodes = evaluate(ev, FINE_TUNED[method], configs, seed, policy)
            entry.update(run_dir=str(ft.run_dir), fine_tune_rewards=ft.rewards,
                         fine_tune_success=ft.successes,
                         fine_tune_configurations=ft.configurations, skipped=ft.skipped,
                         policy=str(path))
        else:
            episodes = evaluate(ev, PRIOR_ONLY[method], configs, seed)
        entry['episodes'] = [asdict(e) for e in episodes]
        for split in SPLITS:
            entry[split] = [e.success for e in episodes if e.split == split]
        out['methods'][method] = entry
        out['seconds'][method] = round(time.monotonic() - t0, 1)
        if progress is not None:
            rates = ', '.join(f'{sp} {np.mean(entry[sp]):.0%}' for sp in SPLITS)
            progress(f'{task} seed {seed} {method}: {rates} ({out["seconds"][method]:.0f} s)')
    return out
