"""
Benchmark the residual optimisers: CEM vs CMA-ES vs random search at 30 evaluations.

Noisy test objectives in the dimension of xi (23 for the 16-joint hand), shaped like DEFT's rewards
(bounded, peaked at an unknown residual within about one initial std, noisy like an operator
score). Each optimiser recommends a residual after its budget (CEM and CMA-ES: the mean of their
distribution; random search: its best-scored sample); the score is the noise-free reward there,
median over seeds. Results are merged into results/bench.json.
"""

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from deft_cem.optimizers import make_optimizer

DIM = 23
STD = np.array([0.02] * 3 + [0.2] * 3 + [0.1] * 16 + [0.1])


def objectives(rng: np.random.Generator) -> Dict[str, Callable[[np.ndarray], float]]:
    """Return the test objectives for one seed, keyed by name (noise-free, higher is better)."""
    optimum = STD * rng.uniform(-1.0, 1.0, DIM)
    weights = np.exp(rng.uniform(np.log(0.2), np.log(5.0), DIM))  # ill-conditioned

    def peak(eps):  # a success basin a few initial stds wide
        return float(np.exp(-0.5 * np.sum(((eps - optimum) / (2.5 * STD)) ** 2) / 4.0))

    def ridge(eps):  # some directions matter far more than others
        return float(np.exp(-0.5 * np.sum(weights * ((eps - optimum) / (2.5 * STD)) ** 2) / 4.0))

    def few(eps):  # only the contact and wrist matter, like a placement task
        z = (eps[:6] - optimum[:6]) / (2.0 * STD[:6])
        return float(np.exp(-0.5 * np.sum(z ** 2)))

    return {'peak': peak, 'ridge': ridge, 'contact_wrist': few}


def run_one(name: str, f: Callable, noise: float, seed: int, budget: int) -> float:
    """Optimise one objective; return the noise-free value at the recommended residual."""
    opt = make_optimizer(name, STD, warmup=10, elites=5, seed=seed)
    rng = np.random.default_rng(10_000 + seed)
    for _ in range(budget):
        eps = opt.ask()
        opt.tell(eps, float(np.clip(f(eps) + noise * rng.standard_normal(), 0.0, 1.0)))
    pick = opt.best()[0] if name == 'random' else opt.mean
    return f(pick)


def measure(seeds: int, budget: int, noise: float) -> Dict[str, Dict[str, float]]:
    """Return {optimizer: {objective: median final value}}."""
    table: Dict[str, Dict[str, list]] = {n: {} for n in ('cem', 'cmaes', 'random')}
    for seed in range(seeds):
        for obj_name, f in objectives(np.random.default_rng(seed)).items():
            for name in table:
                table[name].setdefault(obj_name, []).append(
                    run_one(name, f, noise, seed, budget))
    return {n: {o: float(np.median(v)) for o, v in objs.items()} for n, objs in table.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark, print a table and merge results into the JSON file."""
    parser = argparse.ArgumentParser(prog='deft_bench_optimizers', description=__doc__)
    parser.add_argument('--seeds', type=int, default=30)
    parser.add_argument('--budget', type=int, default=30, help='episodes per run (N)')
    parser.add_argument('--noise', type=float, default=0.1, help='reward noise std')
    parser.add_argument('--out', type=Path, default=Path('results/bench.json'))
    opts = parser.parse_args(argv)
    t0 = time.monotonic()
    table = measure(opts.seeds, opts.budget, opts.noise)
    overall = {n: float(np.mean(list(v.values()))) for n, v in table.items()}
    print(f'{"objective":<16}' + ''.join(f'{n:>10}' for n in table))
    for obj in table['cem']:
        print(f'{obj:<16}' + ''.join(f'{table[n][obj]:>10.3f}' for n in table))
    print(f'{"mean":<16}' + ''.join(f'{overall[n]:>10.3f}' for n in table))
    detail = (f'median over {opts.seeds} seeds of the noise-free reward at the recommended '
              f'residual after {opts.budget} evaluations (M=10, E=5), reward noise '
              f'{opts.noise}, {DIM}-D objectives {", ".join(table["cem"])}; mean over objectives')
    results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
    for other in ('cmaes', 'random'):
        results[f'cem_vs_{other}_final_ratio'] = {
            'value': round(overall['cem'] / max(overall[other], 1e-12), 4),
            'unit': f'ratio (CEM / {other}) of final reward', 'detail': detail,
            'per_objective': {o: [round(table['cem'][o], 4), round(table[other][o], 4)]
                              for o in table['cem']}}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'cem/cmaes {results["cem_vs_cmaes_final_ratio"]["value"]}, cem/random '
          f'{results["cem_vs_random_final_ratio"]["value"]} -> {opts.out} '
          f'({time.monotonic() - t0:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
