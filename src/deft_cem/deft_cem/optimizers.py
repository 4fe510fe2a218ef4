"""
Optimisers of the residual distribution D over the grasp parameters (DEFT, Algorithm 1).

Every optimiser has the same ask/tell interface: `ask()` gives the residual eps of the next
episode, `tell(eps, reward)` reports its reward (higher is better). An episode whose reward was
discarded is simply not told: the next `ask()` returns the same eps, so it is re-recorded.
Runs resume by replaying their recorded (eps, reward) history into a freshly seeded optimiser
(`replay`), which reproduces the distribution and the random stream exactly.
"""

from abc import ABC, abstractmethod
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np


class ResidualOptimizer(ABC):
    """Ask/tell over residuals eps in the parameter space of xi."""

    def __init__(self, initial_std: Sequence[float], seed: Optional[int] = None):
        std = np.asarray(initial_std, dtype=float)
        if std.ndim != 1 or std.size == 0 or not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError('initial_std must be a non-empty vector of finite values >= 0')
        self.initial_std = std
        self.seed = seed
        self.history: List[Tuple[np.ndarray, float]] = []
        self._pending: Optional[np.ndarray] = None

    @property
    def dim(self) -> int:
        """Return the dimension of eps."""
        return self.initial_std.size

    @property
    @abstractmethod
    def mean(self) -> np.ndarray:
        """Return the mean of the current distribution D."""

    @property
    @abstractmethod
    def std(self) -> np.ndarray:
        """Return the per-dimension standard deviation of the current distribution D."""

    @abstractmethod
    def _sample(self) -> np.ndarray:
        """Draw a fresh residual from the current distribution."""

    @abstractmethod
    def _update(self, eps: np.ndarray, reward: float) -> None:
        """Take one told episode into account."""

    def ask(self) -> np.ndarray:
        """Return the residual of the next episode (the same one until it is told)."""
        if self._pending is None:
            self._pending = self._sample()
        return self._pending.copy()

    def tell(self, eps: Sequence[float], reward: float) -> None:
        """Report the reward of the residual last asked for."""
        eps = np.asarray(eps, dtype=float)
        if self._pending is None or eps.shape != self._pending.shape or \
                not np.allclose(eps, self._pending, rtol=0, atol=1e-12):
            raise ValueError('tell() must report the residual returned by the last ask()')
        if not math.isfinite(reward):
            raise ValueError(f'reward must be finite, got {reward}')
        self._pending = None
        self.history.append((eps.copy(), float(reward)))
        self._update(eps, float(reward))

    def best(self) -> Tuple[np.ndarray, float]:
        """Return (eps, reward) of the best episode so far."""
        if not self.history:
            raise ValueError('no episode has been told yet')
        i = int(np.argmax([r for _, r in self.history]))
        return self.history[i][0].copy(), self.history[i][1]


class CEM(ResidualOptimizer):
    """
    The cross-entropy method of DEFT's Algorithm 1.

    D starts as N(0, diag(initial_std^2)). The first `warmup` (M) episodes sample from it. After
    every episode k >= M, all k episodes so far are ranked by reward and D is refitted to the
    `elites` (E) best residuals: a diagonal Gaussian with the elites' mean and standard deviation.
    The std is floored at `std_floor * initial_std` per dimension so D never collapses onto one
    point; `smoothing` alpha in (0, 1] blends the refit with the previous D (alpha = 1: none).
    """

    def __init__(self, initial_std: Sequence[float], warmup: int = 10, elites: int = 5,
                 std_floor: float = 0.05, smoothing: float = 1.0, seed: Optional[int] = None):
        super().__init__(initial_std, seed)
        if warmup < 1:
            raise ValueError(f'warmup episodes M must be >= 1, got {warmup}')
        if elites < 1:
            raise ValueError(f'elites E must be >= 1, got {elites}')
        if not 0.0 <= std_floor <= 1.0:
            raise ValueError(f'std_floor must be within [0, 1], got {std_floor}')
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f'smoothing must be within (0, 1], got {smoothing}')
        self.warmup, self.elites = int(warmup), int(elites)
        self.std_floor, self.smoothing = float(std_floor), float(smoothing)
        self._rng = np.random.default_rng(seed)
        self._mean = np.zeros(self.dim)
        self._std = self.initial_std.copy()

    @property
    def mean(self) -> np.ndarray:
        """Return the mean of D."""
        return self._mean.copy()

    @property
    def std(self) -> np.ndarray:
        """Return the per-dimension std of D."""
        return self._std.copy()

    def elite_indices(self) -> np.ndarray:
        """
        Return the indices into history of the E best episodes so far (best first).

        Equal rewards are ranked by the size of the residual (in units of initial_std), smallest
        first: when many episodes succeed alike (a binary success reward, a good prior), the
        elites stay near the prior instead of being whichever random residuals came first, so D
        does not drift away from a prior that works.
        """
        rewards = np.array([r for _, r in self.history])
        scale = np.where(self.initial_std > 0, self.initial_std, 1.0)
        size = np.array([float(np.linalg.norm(e / scale)) for e, _ in self.history])
        order = np.lexsort((size, -rewards))
        return order[:self.elites]

    def _sample(self) -> np.ndarray:
        return self._mean + self._std * self._rng.standard_normal(self.dim)

    def _update(self, eps: np.ndarray, reward: float) -> None:
        if len(self.history) < self.warmup:
            return
        elite = np.array([self.history[i][0] for i in self.elite_indices()])
        mean = elite.mean(axis=0)
        std = elite.std(axis=0) if len(elite) > 1 else np.zeros(self.dim)
        std = np.maximum(std, self.std_floor * self.initial_std)
        a = self.smoothing
        self._mean = a * mean + (1 - a) * self._mean
        self._std = a * std + (1 - a) * self._std


class CMAES(ResidualOptimizer):
    """CMA-ES (the `cmaes` package) over the same residual space, maximising the reward."""

    def __init__(self, initial_std: Sequence[float], population_size: Optional[int] = None,
                 seed: Optional[int] = None):
        super().__init__(initial_std, seed)
        from cmaes import CMA
        scale = np.where(self.initial_std > 0, self.initial_std, 1e-9)
        self._scale = scale
        # CMA-ES runs in coordinates divided by the initial std: an isotropic start with sigma 1.
        self._cma = CMA(mean=np.zeros(self.dim), sigma=1.0, seed=seed,
                        population_size=population_size)
        self._generation: List[Tuple[np.ndarray, float]] = []

    @property
    def mean(self) -> np.ndarray:
        """Return the mean of the current search distribution."""
        return self._cma.mean * self._scale

    @property
    def std(self) -> np.ndarray:
        """Return the per-dimension std (sigma * sqrt(diag C)) of the search distribution."""
        c = self._cma._C  # the package exposes no public accessor of the covariance
        return self._cma._sigma * np.sqrt(np.diag(c)) * self._scale

    def _sample(self) -> np.ndarray:
        return self._cma.ask() * self._scale

    def _update(self, eps: np.ndarray, reward: float) -> None:
        self._generation.append((eps / self._scale, -reward))
        if len(self._generation) == self._cma.population_size:
            self._cma.tell(self._generation)
            self._generation = []


class RandomSearch(ResidualOptimizer):
    """Draws every residual from the initial D: the no-learning baseline."""

    def __init__(self, initial_std: Sequence[float], seed: Optional[int] = None):
        super().__init__(initial_std, seed)
        self._rng = np.random.default_rng(seed)

    @property
    def mean(self) -> np.ndarray:
        """Return the mean of D (always 0)."""
        return np.zeros(self.dim)

    @property
    def std(self) -> np.ndarray:
        """Return the std of D (always the initial std)."""
        return self.initial_std.copy()

    def _sample(self) -> np.ndarray:
        return self.initial_std * self._rng.standard_normal(self.dim)

    def _update(self, eps: np.ndarray, reward: float) -> None:
        pass


OPTIMIZERS = ('cem', 'cmaes', 'random')


def make_optimizer(name: str, initial_std: Sequence[float], warmup: int = 10, elites: int = 5,
                   seed: Optional[int] = None, **options) -> ResidualOptimizer:
    """Build an optimiser by name: cem | cmaes | random."""
    if name == 'cem':
        return CEM(initial_std, warmup=warmup, elites=elites, seed=seed, **options)
    if name == 'cmaes':
        return CMAES(initial_std, seed=seed, **options)
    if name == 'random':
        return RandomSearch(initial_std, seed=seed)
    raise ValueError(f'unknown optimizer {name!r}; expected one of {", ".join(OPTIMIZERS)}')


def replay(optimizer: ResidualOptimizer,
           history: Sequence[Tuple[Sequence[float], float]]) -> ResidualOptimizer:
    """
    Bring a freshly built optimiser to the state after `history` (resume a run).

    Every recorded eps must be what the optimiser asks for at that point; a mismatch means the run
    was made with other settings or seed, and raises ValueError rather than silently diverging.
    """
    for k, (eps, reward) in enumerate(history):
        asked = optimizer.ask()
        if not np.allclose(asked, eps, rtol=1e-9, atol=1e-12):
            raise ValueError(f'episode {k} of the run does not match the optimiser settings '
                             '(another seed, optimizer, initial_std or parameter space?)')
        optimizer.tell(asked, reward)
    return optimizer
