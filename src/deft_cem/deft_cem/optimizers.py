"""
Optimisers of the residual distribution D over the grasp parameters (DEFT, Algorithm 1).

Every optimiser has the same ask/tell interface: `ask()` gives the residual eps of the next
episode, `tell(eps, reward)` reports its reward (higher is better). An episode whose reward was
discarded is simply not told: the next `ask()` returns the same eps, so it is re-recorded.

Runs resume from the optimiser state stored with every finished episode: `state_dict()` is a
JSON-able dict (numbers, lists, tagged arrays; never a pickle) holding everything the next `ask()`
depends on besides the told history: for CEM the mean, std and the random generator's
bit-generator state; for CMA-ES the `cmaes` package's own serialisable state (mean, sigma, C,
evolution paths, generation, ...), its random state and the solutions told in the unfinished
generation. `load_state_dict(state, history)` puts a freshly built optimiser (same settings) back
into that state, so the next draw is exactly the one an uninterrupted run makes, whatever numpy
or cmaes do to their random streams later. `replay()` (feed the recorded (eps, reward) history into
a freshly seeded optimiser) rebuilds the same state without a stored one: runs written before
states were stored resume that way, and resumption uses it as a cross-check.
"""

from abc import ABC, abstractmethod
import copy
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

STATE_FORMAT = 1  # version of the dict layout of state_dict()


class ResidualOptimizer(ABC):
    """Ask/tell over residuals eps in the parameter space of xi."""

    KIND = ''  # the name make_optimizer() knows it by, stored in state_dict()

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

    def state_dict(self) -> Dict[str, Any]:
        """
        Return the optimiser's state after the episodes told so far, as a JSON-able dict.

        Take it between a tell() and the next ask() (an asked, untold residual is not part of
        it: the restored optimiser draws it again, the same one).
        """
        state = {'kind': self.KIND, 'format': STATE_FORMAT, 'told': len(self.history),
                 'dim': self.dim}
        state.update(self._state())
        return encode_state(state)

    def load_state_dict(self, state: Dict[str, Any],
                        history: Sequence[Tuple[Sequence[float], float]]) -> 'ResidualOptimizer':
        """
        Restore a state_dict() taken after `history` into this optimiser; return self.

        The optimiser must be built with the run's settings. ValueError, naming what does not fit,
        if the state is not one of such an optimiser after that history.
        """
        try:
            state = decode_state(state)
            kind, fmt, told, dim = (state['kind'], state['format'], state['told'],
                                    state['dim'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'not an optimiser state: {exc!r}') from exc
        if kind != self.KIND:
            raise ValueError(f'the stored state is of a {kind!r} optimiser, not {self.KIND!r}')
        if fmt != STATE_FORMAT:
            raise ValueError(f'the stored state has format {fmt}; this version reads '
                             f'{STATE_FORMAT}')
        if dim != self.dim:
            raise ValueError(f'the stored state is {dim}-dimensional, the optimiser {self.dim}')
        if told != len(history):
            raise ValueError(f'the stored state follows {told} episodes, not {len(history)}')
        told_history = []
        for eps, reward in history:
            eps = np.asarray(eps, dtype=float)
            if eps.shape != (self.dim,):
                raise ValueError(f'a recorded eps has {eps.size} entries, not {self.dim}')
            told_history.append((eps, float(reward)))
        try:
            self._load_state(state)
        except (KeyError, TypeError) as exc:
            raise ValueError(f'the stored {kind} state lacks or mistypes {exc}') from exc
        self.history = told_history
        self._pending = None
        return self

    @abstractmethod
    def _state(self) -> Dict[str, Any]:
        """Return what state_dict() stores besides kind, format, told and dim."""

    @abstractmethod
    def _load_state(self, state: Dict[str, Any]) -> None:
        """Take over what _state() returned (decoded); ValueError/KeyError if it does not fit."""

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
    With E > M the first refits rank all k < E episodes and keep them all (no selection yet):
    fine_tune refuses that combination for runs.
    """

    KIND = 'cem'

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

    def _state(self) -> Dict[str, Any]:
        return {'mean': self._mean, 'std': self._std,
                'rng': self._rng.bit_generator.state}

    def _load_state(self, state: Dict[str, Any]) -> None:
        mean, std = (np.asarray(state[k], dtype=float) for k in ('mean', 'std'))
        if mean.shape != (self.dim,) or std.shape != (self.dim,) or \
                not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError('the stored mean and std must be finite vectors of the dimension '
                             f'{self.dim} (std >= 0)')
        rng = generator_from_state(state['rng'])
        self._mean, self._std, self._rng = mean, std, rng

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
    """
    CMA-ES (the `cmaes` package) over the same residual space, maximising the reward.

    `cmaes` has no public accessor of sigma, the covariance or its random state: `std` and
    `state_dict()` read them (`_sigma`, `_C`, `_rng`) and the package's own `__getstate__` /
    `__setstate__` (its serialisation protocol, as used by pickle, never used here to unpickle),
    and say which cmaes version lacks them if a release renames them.
    """

    KIND = 'cmaes'

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

    def __deepcopy__(self, memo):
        """Copy everything, the random state too (cmaes' pickle protocol drops CMA._rng)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            setattr(new, key, copy.deepcopy(value, memo))
        _cma_private(new._cma, '_rng').set_state(_cma_private(self._cma, '_rng').get_state())
        return new

    @property
    def mean(self) -> np.ndarray:
        """Return the mean of the current search distribution."""
        return self._cma.mean * self._scale

    @property
    def std(self) -> np.ndarray:
        """Return the per-dimension std (sigma * sqrt(diag C)) of the search distribution."""
        sigma = _cma_private(self._cma, '_sigma')  # no public accessor of sigma and C
        c = np.asarray(_cma_private(self._cma, '_C'), dtype=float)
        return float(sigma) * np.sqrt(np.diag(c)) * self._scale

    def _sample(self) -> np.ndarray:
        return self._cma.ask() * self._scale

    def _state(self) -> Dict[str, Any]:
        rng = _cma_private(self._cma, '_rng')
        return {'cmaes_version': cmaes_version(), 'cma': self._cma.__getstate__(),
                'cma_rng': rng.get_state(legacy=False),
                'generation': [[x, value] for x, value in self._generation]}

    def _load_state(self, state: Dict[str, Any]) -> None:
        from cmaes import CMA

        stored, written_by = dict(state['cma']), state['cmaes_version']
        expected = self._cma.__getstate__()
        if set(stored) != set(expected):
            missing = sorted(set(expected) - set(stored))
            extra = sorted(set(stored) - set(expected))
            raise ValueError(f'the CMA-ES state was written by cmaes {written_by}; the installed '
                             f'cmaes {cmaes_version()} expects other fields (missing {missing}, '
                             f'unknown {extra})')
        for key in ('_n_dim', '_popsize'):
            if stored[key] != expected[key]:
                raise ValueError(f'the stored CMA-ES state has {key} = {stored[key]}, this '
                                 f'optimiser {expected[key]}')
        generation = [(np.asarray(x, dtype=float), float(v)) for x, v in state['generation']]
        if len(generation) >= self._cma.population_size or \
                any(x.shape != (self.dim,) for x, _ in generation):
            raise ValueError('the stored unfinished CMA-ES generation does not fit the optimiser')
        cma = CMA.__new__(CMA)
        cma.__setstate__(stored)
        rng = _cma_private(cma, '_rng')
        try:
            rng.set_state(state['cma_rng'])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f'the stored CMA-ES random state cannot be restored: {exc}') from exc
        self._cma, self._generation = cma, generation

    def _update(self, eps: np.ndarray, reward: float) -> None:
        self._generation.append((eps / self._scale, -reward))
        if len(self._generation) == self._cma.population_size:
            self._cma.tell(self._generation)
            self._generation = []


class RandomSearch(ResidualOptimizer):
    """Draws every residual from the initial D: the no-learning baseline."""

    KIND = 'random'

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

    def _state(self) -> Dict[str, Any]:
        return {'rng': self._rng.bit_generator.state}

    def _load_state(self, state: Dict[str, Any]) -> None:
        self._rng = generator_from_state(state['rng'])

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


def difference(a: ResidualOptimizer, b: ResidualOptimizer, rtol: float = 1e-9) -> str:
    """
    Return '' if two optimisers have the same distribution and next draw, else what differs.

    Neither is changed (the next draw is taken from copies).
    """
    for what, x, y in (('mean', a.mean, b.mean), ('std', a.std, b.std),
                       ('next eps', copy.deepcopy(a).ask(), copy.deepcopy(b).ask())):
        if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=1e-12):
            worst = float(np.max(np.abs(x - y))) if x.shape == y.shape else math.inf
            return f'{what} differs by up to {worst:.3g}'
    return ''


# --- JSON-able optimiser states (no pickles) ------------------------------------------------
_ARRAY, _FLOAT = '__ndarray__', '__float__'
_DTYPE_KINDS = 'biuf'  # the array dtypes a state may hold: bool, ints, floats


def _float_out(v: float):
    return float(v) if math.isfinite(v) else repr(float(v))  # 'nan', 'inf', '-inf'


def encode_state(value: Any) -> Any:
    """Return value with numpy arrays/scalars made JSON-able (tagged arrays; non-finite tagged)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _DTYPE_KINDS:
            raise TypeError(f'cannot store an array of dtype {value.dtype}')
        flat = value.ravel().tolist()
        if value.dtype.kind == 'f':
            flat = [_float_out(v) for v in flat]
        return {_ARRAY: flat, 'dtype': value.dtype.str, 'shape': list(value.shape)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else {_FLOAT: repr(float(value))}
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): encode_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_state(v) for v in value]
    raise TypeError(f'cannot store a {type(value).__name__} in an optimiser state')


def decode_state(value: Any) -> Any:
    """Invert encode_state(); ValueError/TypeError on anything it does not write."""
    if isinstance(value, dict):
        if _ARRAY in value:
            dtype = np.dtype(str(value['dtype']))
            if dtype.kind not in _DTYPE_KINDS or dtype.hasobject:
                raise ValueError(f'arrays of dtype {dtype} are not read')
            flat = value[_ARRAY]
            if not isinstance(flat, list):
                raise TypeError('a stored array must be a list')
            return np.array(flat, dtype=dtype).reshape([int(n) for n in value['shape']])
        if _FLOAT in value:
            return float(value[_FLOAT])
        return {k: decode_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_state(v) for v in value]
    return value


def generator_from_state(state: Dict[str, Any]) -> np.random.Generator:
    """Return a numpy Generator on the bit generator named in a `bit_generator.state` dict."""
    name = state.get('bit_generator') if isinstance(state, dict) else None
    cls = getattr(np.random, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f'unknown bit generator {name!r} in the stored random state')
    bit_generator = cls()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f'the stored {name} state cannot be restored: {exc}') from exc
    return np.random.Generator(bit_generator)


def cmaes_version() -> str:
    """Return the installed cmaes package's version."""
    try:
        from importlib.metadata import version
        return version('cmaes')
    except Exception:  # noqa: BLE001 (metadata missing: say so, the error is about it anyway)
        return 'unknown'


def _cma_private(cma: Any, name: str) -> Any:
    """Read a private attribute of a cmaes CMA; RuntimeError naming the cmaes version if gone."""
    try:
        return getattr(cma, name)
    except AttributeError:
        raise RuntimeError(
            f'cmaes {cmaes_version()} has no CMA.{name}: deft_cem reads it because cmaes has no '
            'public accessor of sigma, the covariance and the random state (written for cmaes '
            '0.13); install that version or update deft_cem.optimizers.CMAES') from None
